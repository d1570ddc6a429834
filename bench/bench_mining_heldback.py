"""False accepts per hour on the held-back running speech (bench/out/wakeword/running_test) at threshold 0.7,
hop 100 ms, float TFLite of each run's Keras model, before (run_today) and after one kws-mine round
(run_today_mined: cp -r run_today run_today_mined; kws-mine -m run_today_mined --negatives running_train
--rounds 1 --epochs 1 --windows 500 --hop-ms 100).

    python -m bench.bench_mining_heldback
"""
import sys
from pathlib import Path
import keras
from kws.evaluation.mining import float_tflite_scores, run_manifest
from kws.evaluation.scoring import negatives_false_accepts
from kws.trainer.config import load_config
import dataclasses
out = Path("bench/out/wakeword")
files = [str(p) for p in sorted((out / "running_test").iterdir())]
for run in ("run_today", "run_today_mined"):
    cfg = load_config(out / run / "config.yaml")
    labels = (out / run / "labels.txt").read_text().split()
    m = run_manifest(cfg, labels)
    parts = float_tflite_scores(keras.models.load_model(out / run / "model.keras"), files, cfg.features, 100.0, Path("/tmp"))
    fa = negatives_false_accepts(parts, m, {"snowboy": 0.7, "smart-mirror": 0.7},
                                 dataclasses.replace(cfg.smoothing, hop_ms=100.0))
    print(run, fa, flush=True)
