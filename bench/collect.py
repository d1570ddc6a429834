"""Assemble docs/BENCHMARKS.md from the per-area result files in bench/results/*.md.

    python -m bench.collect

Each benchmark script writes its own markdown (with the command that produced it) into
bench/results/; this file only concatenates them in a fixed order under one heading.
"""
from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
ORDER = ("demo", "unseen", "stream_alignment", "stream_alignment_60ep", "stream_oracle", "distill", "distill_oracle", "stream_end", "stream_end_oracle", "speakers",
         "speakers_crossfit", "mixup", "mixup_oracle", "weight_decay", "weight_decay_oracle", "mfcc_coefficients", "mfcc_coefficients_oracle", "calibration_rules", "embedding_unseen", "embedding_unseen_oracle", "embedding_calibration_rules", "talk_background", "talk_background_oracle", "talk_background_calibration", "ensemble_calibration", "ensemble", "ensemble_members", "ensemble_long_validation", "ensemble_float", "ensemble_four", "ensemble_fusion", "embedding_quantization", "embedding_quantization_pair2", "position", "augment_speed", "train", "lr", "synth", "synth_transfer", "wakeword", "wakeword_dynamic", "wakeword_embedding_standardised", "wakeword_trained_negatives",
         "tail_calibration", "embedding",
         "convert", "edge", "edge_issue15", "edge_litert_c",
         "predict_memory", "eval", "sweep")
HEADER = """# Benchmarks

Every number here was measured on the project's reference machine (x86_64, 2 cores, 24 GiB, no GPU,
Debian 12, Python 3.11) by the command printed with it. `make bench` reruns them all
(`python -m bench.run_all`), and `python -m bench.collect` rebuilds this page from `bench/results/`.

Results written before 2026-12-04 counted kws-eval's overall false accepts without the keywords
detected on another spoken keyword (a wrong-label match); the per-keyword counts, `--calibrate` and
the "best any thresholds could do" bounds always counted them. The same detections counted now give
as many overall false accepts or more, never fewer (README, kws-eval: what a false accept is).
"""


def main() -> None:
    parts = [HEADER]
    names = [n for n in ORDER if (RESULTS / f"{n}.md").is_file()]
    names += sorted(p.stem for p in RESULTS.glob("*.md") if p.stem not in ORDER)
    for name in names:
        parts.append((RESULTS / f"{name}.md").read_text().strip() + "\n")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(parts))
    print(f"wrote {DOC} from {len(names)} result file(s): {', '.join(names)}")


if __name__ == "__main__":
    main()
