"""Whether a manifest's calibrated thresholds were chosen on the model file that now runs with them.

int8 and float share one manifest, so ``kws-eval --calibrate`` records under ``calibration`` the
model file whose scores chose the thresholds (``model_file``). Their score distributions differ, so
kws-listen and kws-eval say so when they run a different file with those thresholds."""
from __future__ import annotations

from .manifest import Manifest

ENSEMBLE_SCORED = "ensemble"  # what kws-eval --calibrate records as the model of an ensemble's manifest
CALIBRATED_FILE_KEY = "model_file"


def model_key_of(manifest: Manifest, file: str) -> str | None:
    """The ``models`` key that ``file`` runs as (a streaming form's or an embedding model's file
    runs with its window model / head); None where the manifest does not list the file."""
    for key, entry in manifest.models.items():
        if entry.file == file:
            return key
    for section in (manifest.streaming, manifest.embedding):
        for key, entry in (section.models.items() if section is not None else ()):
            if entry.file == file and key in manifest.models:
                return key
    return None


def same_model(manifest: Manifest, file_a: str, file_b: str) -> bool:
    """Whether two file names run the same model of ``manifest`` (the same scores)."""
    if file_a == file_b:
        return True
    key_a = model_key_of(manifest, file_a)
    return key_a is not None and key_a == model_key_of(manifest, file_b)


def calibrated_on_other_model(manifest: Manifest, running_file: str, source: str = "manifest") -> str | None:
    """One line where ``manifest``'s thresholds were calibrated on another model file than
    ``running_file`` (naming both; ``source`` is the manifest's path), None where they were chosen on
    it or the calibration records no model file."""
    recorded = manifest.calibration.get(CALIBRATED_FILE_KEY)
    if not isinstance(recorded, str) or not recorded or same_model(manifest, recorded, running_file):
        return None
    return (f"{source}: its thresholds were calibrated on {recorded}'s scores and {running_file} runs with "
            f"them: its scores are distributed differently, so they may not hold; kws-eval --calibrate on "
            f"{running_file} chooses its own")
