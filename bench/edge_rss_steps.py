"""Where kws-listen's peak RSS comes from: the process's high-water mark (VmHWM) after each stage of
what ``kws-listen --wav`` does, in one process (Linux only).

    python -m bench.edge_rss_steps --model /tmp/demo30/dist --wav noise.wav [--runtime litert]

Without --runtime, the runtime kws-listen picks (ai-edge-litert's C API where libLiteRt.so loads).

Run it right after bench_edge --cold-libraries (or drop_library_cache) to see the numbers of that table.
"""
from __future__ import annotations

import argparse
import sys
import time


def hwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--runtime", default=None, help="as kws-listen's --runtime (default: what it picks)")
    args = ap.parse_args()
    rows = []
    last = [hwm_mib()]

    def mark(what: str) -> None:
        now = hwm_mib()
        rows.append((what, now, now - last[0]))
        last[0] = now

    mark("Python at start (site; in .venv also the editable install's finder)")
    import numpy  # noqa: F401
    mark("import numpy")
    import click  # noqa: F401
    mark("import click")
    import kws.edge.listen_cli  # noqa: F401
    from kws.edge.locate import resolve_model
    from kws.edge.sources import FileSource
    mark("kws-listen's own modules (listen_cli, recognizer, frontend, manifest, sources, ...)")
    from kws.edge.runtime import pick_runtime
    picked = pick_runtime(args.runtime)
    mark(f"load the runtime ({picked.name} {picked.version}"
         + (": libLiteRt.so through ctypes, its environment)" if picked.name == "litert-c" else ")"))
    from kws.edge.recognizer import Recognizer
    rec = Recognizer.from_manifest(resolve_model(args.model), runtime=args.runtime)
    mark(f"Recognizer.from_manifest ({rec.describe_form()})")
    t = time.process_time()
    for chunk in FileSource(args.wav, rec.sample_rate).chunks():
        rec.process(chunk)
    cpu = time.process_time() - t
    mark(f"process the WAV ({rec.time_s:.0f} s of audio, {cpu:.2f} s CPU)")
    rec.timer.summary_ms()
    mark("the summary's hop-time percentiles")
    for what, now, delta in rows:
        print(f"| {what} | {now:.1f} MiB | +{delta:.1f} MiB |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
