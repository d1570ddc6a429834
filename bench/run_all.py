"""Run every benchmark that has what it needs, then rebuild docs/BENCHMARKS.md.

    python -m bench.run_all            (make bench)

Needs the demo data (make demo) for the training benchmark.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .bench_unseen import TEACHER_RUNS

REPO = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO / "data" / "demo"


DEMO_DIST = REPO / "models" / "demo" / "dist"
SHARED_DATA = REPO.parent / "shared" / "data"


# bench_unseen's runs compared on the unseen speakers' stream (bench/results/stream_alignment.md, stream_oracle.md)
ALIGNMENT_RUNS = ("default,anywhere,anywhere_kwcut,anywhere_kwcut_seed2,anywhere_cut90,anywhere_kwcut_voices,"
                  "anywhere_kwcut_gain20,anywhere_kwcut_unknown50,anywhere_kwcut_gennoise,anywhere_kwcut_gennoise_seed2,"
                  "anywhere_kwcut_negatives,anywhere_kwcut_negatives_seed2,anywhere_kwcut_negatives_unknown50,"
                  "anywhere_kwcut_negatives_unknown50_w192")
# averaged in bench_stream_oracle's ensemble row: the first five, trained without real negatives; the
# distilled runs learn from the same five
ENSEMBLE_RUNS = ",".join(TEACHER_RUNS)
# words trained at the window's newest edge, cut words as _unknown_ (bench/results/stream_end.md)
END_RUNS = "align_end,end_cut90,end_cut90_negatives"
# mixup and weight decay against the runs without (bench/results/mixup.md, weight_decay.md)
MIXUP_RUNS = "default,default_mixup,anywhere_kwcut,anywhere_kwcut_mixup,anywhere_kwcut_wd"
WD_RUNS = "anywhere_kwcut,anywhere_kwcut_wd,anywhere_kwcut_wd_seed2,anywhere_kwcut_wd02"
WD_ORACLE_RUNS = "anywhere_kwcut,anywhere_kwcut_seed2,anywhere_kwcut_wd,anywhere_kwcut_wd_seed2,anywhere_kwcut_wd02"
MFCC_RUNS = "default,default_mfcc13,default_mfcc20,anywhere_kwcut,anywhere_kwcut_mfcc13,anywhere_kwcut_mfcc20"
DISTILLED_RUNS = "distilled_kwcut,distilled_kwcut_seed2,distilled_default,distilled_kwcut_w09,distilled_kwcut_negatives"
# the embedding family (frozen speech embedding + head) on the same speakers (bench/results/embedding_unseen.md)
EMBEDDING_RUNS = "embedding,embedding_negatives,embedding_negatives_seed2"
# talk of the real negatives mixed under the words (augment.talk_background_share), against the same
# recipes without (bench/results/talk_background*.md)
TALK_RUNS = "embedding_negatives_talk,embedding_negatives,anywhere_kwcut_negatives_talk,anywhere_kwcut_negatives"
# a tcn and the embedding family side by side (mean per-hop scores), against each alone and against two
# tcn models (bench/results/ensemble_calibration.md)
ENSEMBLE_CALIBRATION_RUNS = ("default,anywhere_kwcut_wd,distilled_kwcut,embedding_negatives,embedding_negatives_seed2,"
                             "default+anywhere_kwcut_wd,default+embedding_negatives,default+embedding_negatives_seed2,"
                             "anywhere_kwcut_wd+embedding_negatives,anywhere_kwcut_wd+embedding_negatives_seed2,"
                             "distilled_kwcut+embedding_negatives,anywhere_kwcut+embedding_negatives")

# more members (bench/results/ensemble_members.md) and a longer validation stream for the best pairs
# (bench/results/ensemble_long_validation.md)
ENSEMBLE_MEMBER_RUNS = ("anywhere_kwcut_wd+embedding_negatives+embedding_negatives_seed2,"
                        "anywhere_kwcut_wd+distilled_kwcut+embedding_negatives,"
                        "distilled_kwcut+embedding_negatives+embedding_negatives_seed2,"
                        "anywhere_kwcut+anywhere_kwcut_wd+embedding_negatives+embedding_negatives_seed2")
ENSEMBLE_PAIRS = "anywhere_kwcut_wd+embedding_negatives_seed2,anywhere_kwcut+embedding_negatives"
# the pairs with float members (bench/results/ensemble_float.md): which member's int8 costs words
ENSEMBLE_FLOAT_PAIRS = ("anywhere_kwcut_wd:float+embedding_negatives_seed2:float,"
                        "anywhere_kwcut_wd:float+embedding_negatives_seed2:int8,"
                        "anywhere_kwcut_wd:int8+embedding_negatives_seed2:float,"
                        "anywhere_kwcut:float+embedding_negatives:float")


def _runs(names: str) -> str:
    """bench_unseen's 30-epoch run folder names of comma-separated variants (A+B: an ensemble)."""
    return ",".join("+".join(f"{m}-30ep" for m in n.split("+")) for n in names.split(","))
# kws-eval --calibrate's rules compared on models the steps above train (bench/results/calibration_rules.md)
CALIBRATION_RUNS = ("default,anywhere_kwcut,anywhere_kwcut_seed2,distilled_kwcut,distilled_kwcut_negatives,"
                    "anywhere_kwcut_wd,default_mfcc13,anywhere_cut90")


def main() -> None:
    """Each benchmark needs: synth nothing; train and convert the demo data; edge and predict_memory
    the converted demo model; eval a converted "computer" model (bench_synth_transfer trains one; convert it and run
    ``python -m bench.bench_eval --model ...`` by hand)."""
    steps = [["-m", "bench.bench_synth"], ["-m", "bench.bench_synth_transfer"], ["-m", "bench.bench_unseen"],
             ["-m", "bench.bench_unseen", "--headline", ALIGNMENT_RUNS, "--variants", "", "--extra", "",
              "--results", "bench/results/stream_alignment.md", "--title", "Words anywhere in the window, on the issue 13 stream"],
             ["-m", "bench.bench_unseen", "--headline", "anywhere_kwcut_negatives_unknown50", "--epochs", "60",
              "--variants", "", "--extra", "", "--results", "bench/results/stream_alignment_60ep.md",
              "--title", "The negatives recipe trained twice as long, on the issue 13 stream"],
             ["-m", "bench.bench_stream_oracle", "--runs", ",".join([f"{r}-30ep" for r in ALIGNMENT_RUNS.split(",")]
                                                                    + ["anywhere_kwcut_negatives_unknown50-60ep"]),
              "--ensemble", ",".join(f"{r}-30ep" for r in ENSEMBLE_RUNS.split(","))],
             ["-m", "bench.bench_unseen", "--headline", ",".join((*TEACHER_RUNS, DISTILLED_RUNS)),
              "--variants", "", "--extra", "",
              "--results", "bench/results/distill.md", "--title", "Distilled from five models, on the issue 13 stream"],
             ["-m", "bench.bench_stream_oracle", "--runs", ",".join(f"{r}-30ep" for r in (*TEACHER_RUNS,
                                                                                         *DISTILLED_RUNS.split(","))),
              "--ensemble", ",".join(f"{r}-30ep" for r in TEACHER_RUNS), "--results", "bench/results/distill_oracle.md"],
             ["-m", "bench.bench_unseen", "--headline", END_RUNS, "--variants", "", "--extra", "",
              "--results", "bench/results/stream_end.md", "--title", "Words at the window's end, on the issue 13 stream"],
             ["-m", "bench.bench_stream_oracle", "--runs", ",".join(f"{r}-30ep" for r in END_RUNS.split(",")),
              "--results", "bench/results/stream_end_oracle.md"],
             ["-m", "bench.bench_speakers"],
             ["-m", "bench.bench_speakers", "--crossfit"],
             ["-m", "bench.bench_unseen", "--headline", MIXUP_RUNS, "--variants", "", "--extra", "",
              "--results", "bench/results/mixup.md", "--title", "Mixup and weight decay on speakers never heard"],
             ["-m", "bench.bench_stream_oracle", "--runs", ",".join(f"{r}-30ep" for r in MIXUP_RUNS.split(",")),
              "--results", "bench/results/mixup_oracle.md"],
             ["-m", "bench.bench_unseen", "--headline", WD_RUNS, "--variants", "", "--extra", "",
              "--results", "bench/results/weight_decay.md", "--title", "Weight decay on the issue 13 stream"],
             ["-m", "bench.bench_stream_oracle", "--runs", ",".join(f"{r}-30ep" for r in WD_ORACLE_RUNS.split(",")),
              "--results", "bench/results/weight_decay_oracle.md"],
             ["-m", "bench.bench_unseen", "--headline", MFCC_RUNS, "--variants", "", "--extra", "",
              "--results", "bench/results/mfcc_coefficients.md", "--title", "Fewer MFCC coefficients on speakers never heard"],
             ["-m", "bench.bench_stream_oracle", "--runs", ",".join(f"{r}-30ep" for r in MFCC_RUNS.split(",")),
              "--results", "bench/results/mfcc_coefficients_oracle.md"],
             ["-m", "bench.bench_calibration_rules", "--runs",
              ",".join(f"{r}-30ep" for r in CALIBRATION_RUNS.split(",")), "--jobs", "2"],
             ["-m", "bench.bench_unseen", "--headline", EMBEDDING_RUNS, "--variants", "", "--extra", "",
              "--results", "bench/results/embedding_unseen.md", "--title", "The embedding family on speakers never heard"],
             ["-m", "bench.bench_stream_oracle", "--runs", ",".join(f"{r}-30ep" for r in EMBEDDING_RUNS.split(",")),
              "--results", "bench/results/embedding_unseen_oracle.md"],
             ["-m", "bench.bench_calibration_rules", "--runs", ",".join(f"{r}-30ep" for r in EMBEDDING_RUNS.split(",")),
              "--rules", "per_label,per_label_no_tail,shared,per_label_x2",
              "--results", "bench/results/embedding_calibration_rules.md"],
             ["-m", "bench.bench_unseen", "--headline", TALK_RUNS, "--variants", "", "--extra", "",
              "--results", "bench/results/talk_background.md", "--title",
              "Talk under the words: real negatives as background noise"],
             ["-m", "bench.bench_stream_oracle", "--runs", _runs(TALK_RUNS),
              "--results", "bench/results/talk_background_oracle.md"],
             ["-m", "bench.bench_calibration_rules", "--runs", _runs(TALK_RUNS), "--rules", "per_label,per_label_no_tail,shared",
              "--results", "bench/results/talk_background_calibration.md", "--title",
              "Talk under the words: calibration on speakers never heard"],
             ["-m", "bench.bench_calibration_rules", "--runs", _runs(ENSEMBLE_CALIBRATION_RUNS),
              "--rules", "per_label,per_label_no_tail,shared", "--results", "bench/results/ensemble_calibration.md",
              "--title", "Two models side by side: a tcn and the embedding family on speakers never heard"],
             ["-m", "bench.bench_ensemble"],
             ["-m", "bench.bench_ensemble", "--pairs", ENSEMBLE_FLOAT_PAIRS, "--rules", "no_tail,default",
              "--results", "bench/results/ensemble_float.md"],
             ["-m", "bench.bench_embedding_quant"],
             ["-m", "bench.bench_embedding_quant", "--run", "embedding_negatives", "--pair-with", "anywhere_kwcut",
              "--results", "bench/results/embedding_quantization_pair2.md"],
             ["-m", "bench.bench_ensemble", "--pairs", "anywhere_kwcut+anywhere_kwcut_wd+embedding_negatives@dist_dynamic"
              "+embedding_negatives_seed2@dist_dynamic,anywhere_kwcut+anywhere_kwcut_wd", "--rules", "no_tail",
              "--results", "bench/results/ensemble_four.md"],
             ["-m", "bench.bench_fusion", "--members", "embedding_negatives@dist_dynamic,anywhere_kwcut"],
             ["-m", "bench.bench_calibration_rules", "--runs", _runs(ENSEMBLE_MEMBER_RUNS),
              "--rules", "per_label,per_label_no_tail,shared", "--results", "bench/results/ensemble_members.md",
              "--title", "Three and four models side by side on speakers never heard"],
             ["-m", "bench.bench_calibration_rules", "--runs", _runs(ENSEMBLE_PAIRS),
              "--rules", "per_label_long,per_label_no_tail_long,shared_long",
              "--results", "bench/results/ensemble_long_validation.md",
              "--title", "Two models side by side, calibrated on a 2-hour validation stream"],
             ["-m", "bench.bench_position"],
             ["-m", "bench.bench_wakeword"],
             *[["-m", "bench.bench_wakeword", "--per-word", "400", "--epochs", "15", "--hours", "0.1", "--stages",
                "embedding", *seed, "--results", "bench/results/wakeword_dynamic.md"]
               for seed in ((), ("--seed", "7", "--run-suffix", "_seed7"))],
             ["-m", "bench.bench_wakeword", "--stages", "computer", "--results",
              "bench/results/wakeword_dynamic.md"]] \
        if SHARED_DATA.is_dir() else [["-m", "bench.bench_synth"]]
    if DEMO_DATA.is_dir():
        steps.append(["-m", "bench.bench_train", "--data", str(DEMO_DATA)])
        steps.append(["-m", "bench.bench_augment_speed", "--data", str(DEMO_DATA)])
        steps.append(["-m", "bench.bench_lr", "--data", str(DEMO_DATA)])
        steps.append(["-m", "bench.bench_convert", "--data", str(DEMO_DATA)])
    else:
        print(f"skipping bench_train, bench_convert: {DEMO_DATA} missing (run make demo first)", file=sys.stderr)
    if (DEMO_DIST / "manifest.json").is_file():
        steps.append(["-m", "bench.bench_edge", "--model", str(DEMO_DIST), "--keywords", str(DEMO_DATA)])
        steps.append(["-m", "bench.bench_predict_memory", "--model", str(DEMO_DIST)])
    else:
        print(f"skipping bench_edge, bench_predict_memory: {DEMO_DIST} missing (run make demo first)",
              file=sys.stderr)
    steps.append(["-m", "bench.bench_sweep", "--hours", "1", "--hop-ms", "40"])  # synthetic scores: no data needed
    for step in steps:
        subprocess.run([sys.executable, *step], cwd=REPO, check=True)
    subprocess.run([sys.executable, "-m", "bench.collect"], cwd=REPO, check=True)

if __name__ == "__main__":
    main()
