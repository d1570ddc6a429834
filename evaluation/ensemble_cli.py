"""``kws ensemble``: put converted models side by side in one folder that kws-listen and kws-eval run
as one model (kws.edge.ensemble): their per-hop scores averaged, then smoothed and thresholded by the
ensemble's own manifest, which ``kws-eval --calibrate`` tunes like any other."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from kws.edge.errors import KwsError, ManifestError, os_error_line
from kws.edge.manifest import (MANIFEST_NAME, EnsembleMember, EnsembleSection, Manifest, load_manifest,
                               save_manifest)
from kws.edge.model_loader import checked_file, locate, pick_model
from kws.edge.manifest_schema import MAX_ENSEMBLE_MEMBERS
from kws.edge.stopping import exit_interrupted, removed_after, signals_held

from .stopping import stop_cleanly

MEMBER_DIR = "member{}"  # member folders inside the ensemble's, numbered from 1 in hop order
PROBE_SECONDS = 3.0  # audio run through the new ensemble before it replaces anything


@dataclass(frozen=True)
class MemberSource:
    """A converted model named on the command line: its manifest, the model key that runs."""

    manifest_path: Path
    manifest: Manifest
    key: str


def runtime_files(manifest: Manifest) -> list[tuple[str, str, int]]:
    """(file, sha256, size in bytes) of every file the manifest's recognizers read: the models, their
    streaming forms, the embedding family's mel constants and embedding models."""
    files = [(e.file, e.sha256, e.size_bytes) for e in manifest.models.values()]
    if manifest.streaming is not None:
        files += [(e.file, e.sha256, e.size_bytes) for e in manifest.streaming.models.values()]
    if manifest.embedding is not None:
        emb = manifest.embedding
        files.append((emb.mel_constants, emb.mel_sha256, emb.mel_size_bytes))
        files += [(e.file, e.sha256, e.size_bytes) for e in emb.models.values()]
    return sorted(set(files))


def member_source(path: str, model: str | None) -> MemberSource:
    """The converted model at ``path`` (a folder, manifest or .tflite) and the key of the model that
    will run (``model``, the .tflite named, else the manifest's default); a streaming form's or
    embedding model's file names the model it belongs to, as in kws-listen. KwsError, one line."""
    manifest_path, model_file = locate(path)
    manifest = load_manifest(manifest_path)
    if manifest.ensemble is not None:
        raise ManifestError(f"{manifest_path}: an ensemble cannot be a member of another; name its members")
    if model_file is not None:
        key = pick_model(manifest, manifest_path, model_file)[0]
        if model is not None and model != key:
            raise KwsError(f"{path}: the file is the {key!r} model, --model asks for {model!r}")
    else:
        key = model or manifest.default_model(str(manifest_path))
    if key not in manifest.models:
        raise ManifestError(f"{manifest_path}: no {key!r} model (it has: {', '.join(manifest.models) or 'none'})")
    for file, sha, size in runtime_files(manifest):
        checked_file(manifest_path, file, sha, size)
    return MemberSource(manifest_path.resolve(), manifest, key)


def check_compatible(sources: list[MemberSource]) -> None:
    """KwsError naming the member that differs unless all share labels, background labels and rate."""
    first = sources[0]
    for other in sources[1:]:
        for what, mine, theirs in (("labels", first.manifest.labels, other.manifest.labels),
                                   ("background labels", first.manifest.ignore_labels, other.manifest.ignore_labels)):
            if set(mine) != set(theirs):
                missing = sorted(set(mine) - set(theirs))
                extra = sorted(set(theirs) - set(mine))
                parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
                    [f"adds {', '.join(extra)}"] if extra else [])
                raise KwsError(f"{other.manifest_path}: its {what} differ from {first.manifest_path}'s "
                               f"({'; '.join(parts)}): an ensemble's members must spot the same words")
        if other.manifest.sample_rate != first.manifest.sample_rate:
            raise KwsError(f"{other.manifest_path}: {other.manifest.sample_rate} Hz, {first.manifest_path} "
                           f"{first.manifest.sample_rate} Hz: an ensemble's members must share a sample rate")


def ensemble_manifest(sources: list[MemberSource]) -> Manifest:
    """The new ensemble's manifest: the first member's labels, frontend and smoothing (its hop leads),
    no per-label thresholds yet (kws-eval --calibrate chooses them)."""
    first = sources[0].manifest
    members = tuple(EnsembleMember(path=MEMBER_DIR.format(i + 1), model=s.key, source=str(s.manifest_path.parent))
                    for i, s in enumerate(sources))
    runs = [str(s.manifest.extra["source_run"]) for s in sources if s.manifest.extra.get("source_run")]
    return Manifest(labels=first.labels, frontend=first.frontend, smoothing=first.smoothing, thresholds={},
                    ignore_labels=first.ignore_labels, ensemble=EnsembleSection(members=members),
                    extra={"source_runs": runs, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def build(sources: list[MemberSource], out: Path, written: Callable[[], None] = lambda: None) -> Path:
    """Write the ensemble folder ``out`` (member folders with their runtime files, then the manifest),
    built beside it and swapped in only once it runs; an earlier ensemble there is replaced, any
    other non-empty folder is refused. ``written`` is called the moment the new ensemble is at
    ``out`` (a stop after it has something to keep). Returns the manifest path."""
    if out.exists() and not out.is_dir():
        raise KwsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        mpath = out / MANIFEST_NAME
        try:
            previous = load_manifest(mpath) if mpath.is_file() else None
        except ManifestError:
            previous = None
        if previous is None or previous.ensemble is None:
            raise KwsError(f"{out}: a folder that is not empty and holds no earlier ensemble; "
                           "give a new or empty folder for --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = ensemble_manifest(sources)

    def named(text: str) -> str:
        """An error's text with the staging folder's paths put back as the user named them."""
        for member, source in zip(manifest.ensemble.members, sources):
            text = text.replace(str(tmp / member.path), str(source.manifest_path.parent))
        return text.replace(str(tmp), str(out))

    # a second Ctrl-C while the staging folder is removed cannot leave half of it beside --out
    with removed_after(lambda: shutil.rmtree(tmp, ignore_errors=True)):
        try:
            for member, source in zip(manifest.ensemble.members, sources):
                folder = tmp / member.path
                folder.mkdir(parents=True)
                src_dir = source.manifest_path.parent
                for file, _, _ in runtime_files(source.manifest):
                    src = (src_dir / file).resolve()
                    if src_dir not in src.parents:
                        raise ManifestError(f"{source.manifest_path}: lists {file}, outside its folder")
                    (folder / file).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, folder / file)
                shutil.copy2(source.manifest_path, folder / MANIFEST_NAME)
            path = save_manifest(manifest, tmp / MANIFEST_NAME)
            _probe(path)
        except KwsError as exc:
            raise type(exc)(named(str(exc))) from None
        except OSError as exc:
            raise KwsError(named(os_error_line(exc))) from None
        _swap_in(tmp, out, old, written)
        with signals_held():  # the earlier ensemble goes whole, never half of it left hidden at old
            shutil.rmtree(old, ignore_errors=True)
    return out / MANIFEST_NAME


def _swap_in(new: Path, out: Path, old: Path, written: Callable[[], None] = lambda: None) -> None:
    """Rename the folder ``new`` to ``out``, an earlier ``out`` first to ``old``, then call
    ``written``. A stop signal between the two renames would leave nothing at ``out`` and the earlier
    folder hidden at ``old``: the swap runs to its end, and a stop that arrived meanwhile is dropped,
    since the command has done its work a moment later."""
    with signals_held(then=None):
        if out.exists():
            out.rename(old)
        try:
            new.rename(out)
        except BaseException:
            if old.exists():  # the earlier folder goes back where it was
                old.rename(out)
            raise
        written()


def _probe(manifest_path: Path) -> None:
    """Open the ensemble as kws-listen will and run a few seconds of silence through it."""
    import numpy as np

    from kws.edge.recognizer import Recognizer

    rec = Recognizer.from_manifest(manifest_path)
    rec.process(np.zeros(int(PROBE_SECONDS * rec.sample_rate), np.float32))


EXAMPLES = """
\b
Examples:
  kws ensemble models/tcn_run/dist models/embedding_run/dist --out models/pair
  kws ensemble models/tcn_run/dist models/embedding_run/dist/model_float.tflite --out models/pair
  kws-eval -m models/pair --keywords data/validation --noise ~/noise --calibrate --no-tail
  kws-listen -m models/pair
"""


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.argument("models", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="The ensemble's folder (new or empty, or an earlier ensemble to replace).")
@click.option("--model", "model_key", type=click.Choice(["int8", "float"]), default=None,
              help="Which model of each member runs  [default: each one's default, int8 where it has one]")
@stop_cleanly("kws-ensemble", "nothing was written")
def main(models, out, model_key) -> None:
    """Put two or more converted models (kws-convert folders, of any family) side by side as one.

    Every member hears the same audio at its own hop; at each hop of the finest-hop member the
    ensemble averages each member's latest scores and smooths the mean with its own manifest. The
    members must spot the same labels at the same sample rate. The new ensemble has no per-label
    thresholds: calibrate it with kws-eval --calibrate on speakers held out of training. It costs
    the CPU of all its members together."""
    if len(models) < 2 or len(models) > MAX_ENSEMBLE_MEMBERS:
        raise click.UsageError(f"give 2 to {MAX_ENSEMBLE_MEMBERS} converted models, got {len(models)}")
    written: list[bool] = []  # the new ensemble is at --out: a stop from then on has it to keep
    try:
        try:
            sources = [member_source(m, model_key) for m in models]
            seen: dict[Path, str] = {}
            for name, source in zip(models, sources):
                if source.manifest_path in seen:
                    raise KwsError(f"{name}: the same model as {seen[source.manifest_path]}; name each model once")
                seen[source.manifest_path] = name
            check_compatible(sources)
            # the finest hop leads: the ensemble decides at its hops (stable: equal hops keep their order)
            sources.sort(key=lambda s: s.manifest.smoothing.hop_ms)
            path = build(sources, Path(out), written=lambda: written.append(True))
        except KwsError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(os_error_line(exc)) from None
        _describe(path, sources, out)
    except KeyboardInterrupt:
        if not written:  # stop_cleanly says nothing was written
            raise
        exit_interrupted(f"kws-ensemble: interrupted; the new ensemble was written to {out} (not calibrated yet)")


def _describe(path: Path, sources: list[MemberSource], out: str) -> None:
    """The lines kws-ensemble ends with: what was written, how each member runs (the form kws-listen
    runs, e.g. a tcn's streaming form, not its manifest's family), and the next step."""
    from kws.edge.recognizer import Recognizer

    manifest = load_manifest(path)
    rec = Recognizer.from_manifest(path)
    click.echo(f"wrote {path}: {len(sources)} models, {len(manifest.labels)} labels, decisions every "
               f"{manifest.smoothing.hop_ms:g} ms")
    for member, source, runs in zip(manifest.ensemble.members, sources, rec.members):
        click.echo(f"  {member.path}: {source.manifest_path.parent} ({member.model}, hop {runs.hop_ms:g} ms; "
                   f"{runs.describe_form()})")
    click.echo(f"not calibrated yet: kws-eval -m {out} --keywords <held-out speakers' folders> --calibrate")


if __name__ == "__main__":
    main()
