"""kws-convert, kws-mine and kws-train --resume given a folder of converted models (a run's dist/, or a
kws-convert --out folder elsewhere) where a training run is wanted: the one-line error names the run
to give, found above the folder or in its manifest's extra.source_run, and nothing is written."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from kws.converters.cli import main as convert_main
from kws.edge.frontend import FrontendConfig
from kws.edge.manifest import Manifest, save_manifest
from kws.evaluation.mine_cli import main as mine_main
from kws.trainer.cli import main as train_main

LABELS = ("_silence_", "_unknown_", "up")


def make_run(path):
    """A finished run folder's files (contents unread before the errors under test)."""
    path.mkdir(parents=True)
    for name in ("config.yaml", "split.json", "labels.txt", "model.keras"):
        (path / name).write_bytes(b"{}")
    return path


def make_converted(folder, source_run):
    """A kws-convert folder whose manifest records ``source_run``."""
    folder.mkdir(parents=True)
    manifest = Manifest(labels=LABELS, frontend=FrontendConfig(),
                        extra={"converted_by": "kws-convert", "source_run": str(source_run)})
    save_manifest(manifest, folder / "manifest.json")
    (folder / "model_int8.tflite").write_bytes(b"TFL3")
    return folder


def files_under(root):
    return sorted((p.relative_to(root), p.stat().st_size) for p in root.rglob("*"))


def test_kws_convert_given_a_runs_dist_names_the_run(tmp_path):
    """kws-convert -m RUN/dist said it "holds converted models, not a training run" without naming RUN."""
    run = make_run(tmp_path / "run")
    dist = make_converted(run / "dist", run)
    before = files_under(tmp_path)
    res = CliRunner().invoke(convert_main, ["-m", str(dist)])
    assert res.exit_code == 1, res.output
    assert res.output.splitlines()[-1] == (f"kws-convert: error: {dist}: holds converted models, not a training "
                                           f"run (it lies inside the run {run}: kws-convert -m {run})")
    res = CliRunner().invoke(convert_main, ["-m", str(dist / "model_int8.tflite")])
    assert res.output.splitlines()[-1] == (f"kws-convert: error: {dist / 'model_int8.tflite'}: not a training run "
                                           f"folder (it lies inside the run {run}: kws-convert -m {run})")
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("command,flag,line", [
    (convert_main, "-m", "kws-convert: error: {out}: holds converted models, not a training run "
                         "(it was converted from the run {run}: kws-convert -m {run})"),
    (mine_main, "-m", "Error: {out}: not a finished training run (no config.yaml / model.keras); "
                      "it was converted from the run {run}: kws-mine -m {run}"),
    (train_main, "--resume", "Error: {out}: not a resumable run (no config.yaml / split.json); "
                             "it was converted from the run {run}: kws-train --resume {run}"),
], ids=["convert", "mine", "train"])
def test_a_converted_folder_outside_its_run_names_the_source_run(command, flag, line, tmp_path):
    """A kws-convert --out folder elsewhere said "train it with kws-train first" (kws-mine) or named no
    run at all, though its manifest records the run it came from; that run is named while it exists."""
    run = make_run(tmp_path / "models" / "r2")
    out = make_converted(tmp_path / "shipped" / "robot", run.resolve())
    before = files_under(tmp_path)
    res = CliRunner().invoke(command, [flag, str(out)])
    assert res.exit_code == 1, res.output
    assert res.output.splitlines()[-1] == line.format(out=out, run=run.resolve())
    assert files_under(tmp_path) == before
    shutil.rmtree(run)  # the run since deleted: no run to name, the error as before
    res = CliRunner().invoke(command, [flag, str(out)])
    assert res.exit_code == 1 and str(run) not in res.output, res.output
