"""False accepts per hour on the held-back running speech (bench/out/wakeword/running_test) at threshold 0.7,
hop 100 ms, float TFLite of each run's Keras model, before (run_today) and after one kws-mine round
(run_today_mined: cp -r run_today run_today_mined; kws-mine -m run_today_mined --negatives running_train
--rounds 1 --epochs 1 --windows 500 --hop-ms 100).

    python -m bench.bench_mining_heldback
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "wakeword"
THRESHOLD = 0.7
HOP_MS = 100.0
RUNS = ("run_today", "run_today_mined")


def main() -> None:
    import keras

    from kws.evaluation.mining import float_tflite_scores, run_manifest
    from kws.evaluation.scoring import negatives_false_accepts
    from kws.trainer.config import load_config

    files = [str(p) for p in sorted((OUT / "running_test").iterdir())]
    for run in RUNS:
        cfg = load_config(OUT / run / "config.yaml")
        labels = (OUT / run / "labels.txt").read_text().split()
        manifest = run_manifest(cfg, labels)
        keywords = [l for l in labels if l not in manifest.ignore_labels]
        parts = float_tflite_scores(keras.models.load_model(OUT / run / "model.keras"), files, cfg.features, HOP_MS,
                                    OUT / run)
        fa = negatives_false_accepts(parts, manifest, dict.fromkeys(keywords, THRESHOLD),
                                     dataclasses.replace(cfg.smoothing, hop_ms=HOP_MS))
        print(run, fa, flush=True)


if __name__ == "__main__":
    main()
