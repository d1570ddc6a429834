"""Where the embedding heads' false accepts fall in the held-out running speech (bench_embedding's saved
heads and cached embeddings, at each run's calibrated thresholds and window).

    python -m bench.embedding_false_accepts

Prints, per run and recipe in bench/out/embedding/results.json whose head was saved, every detection on
the held-out 40% of running_speech/: (file, time s, label, smoothed score).
"""
from __future__ import annotations

import json

import numpy as np

from bench import bench_embedding as be


def main() -> None:
    import keras

    from kws.evaluation.scoring import smooth

    res = json.loads((be.OUT / "results.json").read_text())
    _, test_files = be.running_files(None)
    for tag, entry in res.items():
        tflite = entry["settings"].get("embedding_tflite")
        sfx = "_" + tflite.rsplit("/", 1)[-1].rsplit(".", 1)[0] if tflite else ""
        data = dict(np.load(be.OUT / f"running_test{sfx}.npz"))
        for row in entry["rows"]:
            head = be.OUT / f"head_{row['recipe']}{tag[len('main'):]}.keras"
            if "failed" in row or not head.is_file():
                continue
            model = keras.models.load_model(head, safe_mode=False)
            man = be.manifest(row["window_ms"], row["thresholds"])
            hits = []
            for f in test_files:
                emb = data[f.name]
                for d in smooth(be.score_times(len(emb)), be.predict(model, emb), man, man.smoothing, row["thresholds"]):
                    hits.append((f.name, round(d.time_s, 2), d.label, round(d.score, 4)))
            print(f"{tag} {row['recipe']}: {len(hits)} false accept(s) {hits}", flush=True)


if __name__ == "__main__":
    main()
