"""The batches chapter 05 reads next to its main batch, and when.

Besides its main ``batch`` (chapter 04 over seeds), chapter 05 reads two
companion batches: the long-tail batch (C-cud on long-tail classes) and the
glyph batch (183 classes: C-cardinality and the glyph claims). Their
parameters (``long_tail_batch``, ``glyph_batch``) default to ``"auto"``:
the committed companions when ``batch`` is the committed main batch
(``claims.MAIN_BATCH``), and none for any other batch, so chapter 05 run on
a smoke or a new batch shows that batch alone and never mixes in the
committed full-size verdicts. A folder name (under the home's
``papermill_runs/``) or path reads that batch; ``""`` skips it.
"""

from __future__ import annotations

from pathlib import Path

from calibkd.errors import ConfigError
from calibkd.io import load_yaml
from calibkd.runs.claims import CARDINALITY_BATCH, LONG_TAIL_BATCH, MAIN_BATCH
from calibkd.runs.results import finished_runs, recorded_parameters

#: The value that picks the committed companion only next to the committed main batch.
AUTO = "auto"
#: Each companion parameter's committed batch.
COMMITTED = {"long_tail_batch": LONG_TAIL_BATCH, "glyph_batch": CARDINALITY_BATCH}


def companion_batch(parameter: str, value: str, batch: str, runs_root: Path) -> str:
    """The batch ``parameter`` (``long_tail_batch`` or ``glyph_batch``) names:
    ``value`` itself, or for ``"auto"`` its committed batch when ``batch`` is
    the committed main batch and ``""`` (skipped) otherwise."""
    if value != AUTO:
        return value
    is_main = batch_folder(batch, runs_root).resolve() == batch_folder(MAIN_BATCH, runs_root).resolve()
    return COMMITTED[parameter] if is_main else ""


def describe(parameter: str, value: str, chosen: str) -> str:
    """One line saying which companion batch is read, and why (for the chapter's output)."""
    what = {"long_tail_batch": "long-tail batch", "glyph_batch": "glyph batch"}[parameter]
    if chosen:
        return f"{what}: {chosen}" + (" (auto: the committed one, next to the committed main batch)"
                                      if value == AUTO else "")
    reason = ("auto: skipped, since the main batch is not the committed one" if value == AUTO
              else "skipped (empty)")
    return f"{what}: none ({parameter}={value!r}, {reason})"


def batch_folder(name: str, runs_root: Path) -> Path | None:
    """The folder of batch ``name`` (under ``runs_root``, or a path); ``None`` for ``""``."""
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else Path(runs_root) / path


def _recorded_tuning(root: Path) -> set[str]:
    """The ``tuning`` values the batch's finished runs recorded (a run made
    before the parameter existed used the config's settings: ``""``)."""
    return {str(recorded_parameters(folder).get("tuning") or "") for folder in finished_runs(Path(root))}


def tuning_batch(root: Path, runs_root: Path) -> Path | None:
    """The tuning batch whose choices batch ``root``'s runs used, or ``None``
    when they used the config's settings or tuned inside their own runs
    (``tuning: run``). What the finished runs recorded decides (a definition
    edited since, for a re-run, does not change what they did); a batch
    with no finished run is read from its definition. Runs that used
    different settings are an error: their results are not one experiment."""
    recorded = _recorded_tuning(root)
    if len(recorded) > 1:
        raise ConfigError(f"the finished runs of batch {Path(root).name} used different tuning settings "
                          f"{sorted(recorded)}: re-run them with one")
    if recorded:
        (name,) = recorded
    else:
        definition = Path(root) / "batch.yaml"
        text = definition.read_text() if definition.is_file() else ""
        name = ((load_yaml(text) or {}).get("parameters") or {}).get("tuning", "") if text else ""
    return batch_folder(name, runs_root) if name and name != "run" else None
