"""Output folders of runs: nothing is overwritten without ``force``, nothing resumed without ``resume``.

Checked before any data is loaded or any epoch is trained, so a mistake costs seconds, not an hour:

* a folder holding a finished run (its marker file, e.g. ``metrics.json``) is refused unless
  ``force``, which clears the run's own files first, or ``resume`` with a larger epoch budget,
  which trains it further from its last checkpoint;
* a folder holding an unfinished run (``checkpoints/last.pt``) is refused unless ``resume`` (which
  continues it, after checking that the saved configuration is the one asked for) or ``force``;
* every file the run will write must not exist yet (unless ``force``) and its folder must be
  writable; the check writes and removes a probe file there.

The configuration of a run is kept beside its checkpoint (``checkpoints/run.json``), so a resumed run
can be compared key by key with the one that was started.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdistill.data.errors import DataError

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
RUN_CONFIG = "run.json"
# How a run is carried out, not what it computes: may differ between a run and its resumption.
IGNORED_KEYS = frozenset({"progress", "device", "resume", "force", "threads", "quiet"})
# May grow on resume: epochs are seeded by (seed, epoch), so training further from a checkpoint
# gives the same weights as a run started with the larger budget.
EXTENDABLE = "max_epochs"
# Settings that name a file or folder: the same place written another way (relative or absolute,
# through a link) is the same setting.
PATH_KEYS = frozenset({"teacher", "data_dir", "save_teacher"})


class OutputError(DataError):
    """An output path that cannot or must not be written; printed as one line, exit code 2."""


@dataclass
class RunDir:
    """What :func:`prepare_run_dir` found: where the run goes and whether it continues one."""

    path: Path
    resume_epoch: int | None = None  # epochs already done by the checkpoint being resumed
    max_epochs: int | None = None
    resume_requested: bool = False
    saved_max_epochs: int | None = None  # the budget the resumed run was started with

    @property
    def resuming(self) -> bool:
        return self.resume_epoch is not None

    def describe(self) -> str:
        """One line for the user: fresh start or where a resumed run continues."""
        if self.resuming:
            if self.max_epochs and self.resume_epoch >= self.max_epochs:
                return (f"resuming {self.path}: all {self.max_epochs} epochs are done, only the "
                        "evaluation is left")
            total = f" of {self.max_epochs}" if self.max_epochs else ""
            grown = (f", most epochs raised from {self.saved_max_epochs}"
                     if self.saved_max_epochs and self.saved_max_epochs != self.max_epochs else "")
            return (f"resuming {self.path} from epoch {self.resume_epoch + 1}{total} "
                    f"(checkpoint after epoch {self.resume_epoch}{grown})")
        if self.resume_requested:
            return f"--resume: no checkpoint in {self.path}, starting from epoch 1"
        return ""


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts → dotted keys, values normalised through JSON (tuples = lists)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.loads(json.dumps(value, default=str))
    return flat


def config_differences(
    saved: Mapping[str, Any],
    wanted: Mapping[str, Any],
    ignore: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """``key: saved X, now Y`` for each setting that differs (run-mechanics keys ignored).

    A setting the saved run does not name (it predates the option) is no difference when the run
    now asks for its default (``defaults``, nested like ``wanted``): a new option's default keeps
    the old behaviour, so a run cut before the option existed still resumes.
    """
    a, b = flatten(saved), flatten(wanted)
    known = flatten(defaults or {})
    skip = IGNORED_KEYS | set(ignore)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key.rsplit(".", 1)[-1] in skip:
            continue
        if key not in a and key in known and b.get(key) == known[key]:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>") and not _same_place(key, a, b):
            diffs.append(f"{key}: saved {a.get(key, '<absent>')!r}, now {b.get(key, '<absent>')!r}")
    return diffs


def _same_place(key: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether ``key`` names a path both sides write differently but that resolves to one place."""
    x, y = a.get(key), b.get(key)
    if key.rsplit(".", 1)[-1] not in PATH_KEYS or not isinstance(x, str) or not isinstance(y, str):
        return False
    return os.path.realpath(x) == os.path.realpath(y)


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and prove a file can be written there (probe, then removed)."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, f"{what} must be a folder, but this is a file; give a new name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(folder, f"cannot write the {what} here ({exc.strerror or exc}); "
                          "choose a folder you can write to") from None


def check_output_file(path: Path, force: bool, what: str = "output file") -> None:
    """A file a run will write: not a folder, not existing unless ``force``, its folder writable."""
    if path.is_dir():
        raise OutputError(path, f"{what} names a folder; give a file name")
    if path.exists() and not force:
        raise OutputError(path, f"{what} already exists; choose another name or add --force to "
                          "overwrite it")
    check_writable(path.parent, f"folder of the {what}")


def check_partial(target: Path, partial: Path, force: bool, resume: bool) -> None:
    """An output built from pieces (``partial``, e.g. part files) that a killed run left behind:
    continued only with ``resume``, cleared with ``force``, else refused; ``target`` must be new."""
    if partial.exists():
        if force:
            shutil.rmtree(partial)
        elif not resume:
            raise OutputError(partial, "holds the pieces of an interrupted run; add --resume to "
                              "continue it, or --force to start over")
    check_output_file(target, force, "output file (--out)")


def _checkpoint_epochs(last: Path) -> tuple[int, dict[str, Any]]:
    import torch

    try:
        state = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise OutputError(last, f"checkpoint cannot be read ({exc}); add --force to start over") \
            from None
    return int(state["epoch"]) + 1, dict(state.get("config") or {})


def prepare_run_dir(
    out: str | os.PathLike[str],
    config: Mapping[str, Any],
    *,
    force: bool = False,
    resume: bool = False,
    finished: str = "metrics.json",
    outputs: Sequence[str] = (),
    extra_files: Iterable[str | os.PathLike[str]] = (),
    checkpoint_dir: str = CHECKPOINT_DIR,
    defaults: Mapping[str, Any] | None = None,
) -> RunDir:
    """Check (and with ``force`` clear) a run's output folder before the run starts.

    ``finished`` is the file whose presence means the run completed; ``outputs`` are other files
    (relative to ``out``) the run writes; ``extra_files`` are outputs elsewhere (``--save-teacher``).
    ``config`` is what the run computes; on resume it must equal the saved one, except settings
    the saved run predates that ``config`` leaves at their ``defaults``.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise OutputError(path, "--out names an existing file; give a folder name (it is created)")
    ckpt = path / checkpoint_dir
    last = ckpt / LAST
    info = RunDir(path=path, resume_requested=resume)
    train_cfg = config.get("train") if isinstance(config.get("train"), Mapping) else None
    info.max_epochs = train_cfg.get("max_epochs") if train_cfg else None

    if (path / finished).exists() and not (resume and last.exists() and not force):
        if not force:
            raise OutputError(path, f"holds a finished run ({finished}); use another --out, add "
                              "--force to overwrite it, or --resume with more epochs to train it "
                              "further")
        _clear(path, [finished, *outputs], ckpt)
    elif last.exists():
        if force:
            _clear(path, list(outputs), ckpt)
        elif not resume:
            done, _ = _checkpoint_epochs(last)
            raise OutputError(path, f"holds an unfinished run (checkpoint after epoch {done}); add "
                              "--resume to continue it, or --force to start over")
        else:
            done, saved_train = _checkpoint_epochs(last)
            saved_file = ckpt / RUN_CONFIG
            if saved_file.exists():
                saved = json.loads(saved_file.read_text())
                diffs = config_differences(saved, config, ignore={EXTENDABLE}, defaults=defaults)
            else:  # checkpoints from before run.json: only the engine's settings are known
                saved = {"train": saved_train}
                diffs = config_differences(saved_train, train_cfg or {}, ignore={EXTENDABLE},
                                           defaults=(defaults or {}).get("train"))
            if diffs:
                raise OutputError(path, "--resume: the saved run was made with other settings — "
                                  + "; ".join(diffs) + ". Use the same options, another --out, or "
                                  "--force to start over")
            saved_max = (saved.get("train") or {}).get(EXTENDABLE)
            if (path / finished).exists() and info.max_epochs is not None and done >= info.max_epochs:
                raise OutputError(path, f"holds a finished run ({finished}) that already trained "
                                  f"{done} epochs; give more epochs to train it further, or --force "
                                  "to start over")
            info.resume_epoch, info.saved_max_epochs = done, saved_max
            if saved_max is not None and info.max_epochs != saved_max:
                _write_config(saved_file, config)  # the new budget, for the next resumption
    elif force:
        _clear(path, list(outputs), ckpt)
    else:
        existing = [name for name in outputs if (path / name).exists()]
        if existing:
            raise OutputError(path, f"already holds {', '.join(existing)}; use another --out, or "
                              "add --force to overwrite")

    for extra in extra_files:
        check_output_file(Path(extra), force, "output file")
    check_writable(path, "output folder")
    if not info.resuming:
        _write_config(ckpt / RUN_CONFIG, config)
    return info


def _clear(path: Path, names: Sequence[str], ckpt: Path) -> None:
    """Remove a previous run's own files (never anything else in the folder)."""
    for name in names:
        target = path / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    if ckpt.exists():
        shutil.rmtree(ckpt)


def _write_config(target: Path, config: Mapping[str, Any]) -> None:
    from flowdistill.engine.trainer import write_json

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json(target, dict(config))
    except OSError as exc:
        raise OutputError(target.parent, f"cannot write here ({exc.strerror or exc})") from None
