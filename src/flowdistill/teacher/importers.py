"""Bring teacher forecasts made elsewhere into a FlowDistill teacher file.

* UrbanGPT evaluation JSON: a list of records, one per region and sample, with ``id`` ending in
  ``_region_<s>_<e>_len_<i>`` (``s`` = region column, ``e`` = s + 1, ``i`` = running sample number of
  the evaluated windows, consecutive from 0), 12-value lists ``st_pre_infolow`` / ``st_pre_outfolow``
  (forecast) and ``y_in`` / ``y_out`` (truth). Sample ``i`` is window ``first_window + i``; the truth
  in the records is compared with the dataset's, so an offset or region mix-up is refused.
* The reference code's teacher ``.npz``: one series ``[N, T, C]`` (or ``[T, N, C]``) over the whole
  period, "windowed like the truth": window ``t`` gets slots ``[t, t+H)``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from flowdistill.data.errors import DataError
from flowdistill.data.windows import Windows
from flowdistill.teacher.file import TeacherPredictions

URBANGPT_ID = re.compile(r"_region_(\d+)_(\d+)_len_(\d+)$")
FIELDS = ("st_pre_infolow", "st_pre_outfolow")
TRUTH = ("y_in", "y_out")


def _records(paths: list[Path]) -> list[tuple[Path, dict]]:
    out = []
    for p in paths:
        if not p.exists():
            raise DataError(p, "file not found")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(p, f"not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise DataError(p, "expected a list of UrbanGPT result records")
        out.extend((p, r) for r in data)
    return out


def import_urbangpt(
    paths: list[str | os.PathLike[str]],
    windows: Windows,
    first_window: int | None = None,
    check_truth: bool = True,
    tolerance: float = 0.5,
) -> TeacherPredictions:
    """UrbanGPT result JSON files -> teacher predictions for the windows they cover.

    ``first_window`` is the window id of sample 0 (default: the first test window).
    """
    first = int(windows.ids("test")[0] if first_window is None else first_window)
    H, N, C = windows.cfg.output_len, windows.dataset.num_regions, windows.dataset.num_channels
    if C != 2:
        raise DataError("urbangpt import", f"UrbanGPT records carry 2 channels, dataset has {C}")
    found: dict[int, np.ndarray] = {}
    seen: dict[int, set[int]] = {}
    for path, rec in _records([Path(p) for p in paths]):
        rid = str(rec.get("id", ""))
        m = URBANGPT_ID.search(rid)
        if not m:
            raise DataError(path, f"record id {rid!r} is not '..._region_<s>_<e>_len_<i>'")
        s, e, i = (int(g) for g in m.groups())
        if e != s + 1:
            raise DataError(path, f"record {rid!r} spans regions {s}..{e}; one region expected")
        if not 0 <= s < N:
            raise DataError(path, f"record {rid!r}: region {s} outside 0..{N - 1}")
        try:
            pred = np.stack([np.asarray(rec[f], dtype=np.float64).reshape(-1) for f in FIELDS], -1)
        except KeyError as exc:
            raise DataError(path, f"record {rid!r} has no field {exc.args[0]}") from exc
        except ValueError as exc:
            raise DataError(path, f"record {rid!r}: {exc}") from exc
        if pred.shape != (H, 2):
            raise DataError(path, f"record {rid!r}: forecast has shape {pred.shape}, want ({H}, 2)")
        w = first + i
        if w < windows.cfg.input_len or w > windows.dataset.num_slots - H:
            raise DataError(path, f"record {rid!r}: window {w} is outside the dataset")
        if s in seen.setdefault(i, set()):
            raise DataError(path, f"record {rid!r} appears twice")
        seen[i].add(s)
        if check_truth and all(t in rec for t in TRUTH):
            truth = np.stack([np.asarray(rec[t], dtype=np.float64).reshape(-1) for t in TRUTH], -1)
            ours = windows.targets(np.array([w]))[0, :, s, :]
            if truth.shape != ours.shape or np.abs(truth - ours).max() > tolerance:
                raise DataError(
                    path,
                    f"record {rid!r}: its truth does not match window {w}, region {s} of "
                    f"{windows.dataset.name} (wrong --first-window or region order?)",
                )
        found.setdefault(i, np.zeros((H, N, 2), dtype=np.float32))[:, s, :] = np.abs(pred)
    if not found:
        raise DataError("urbangpt import", "no records")
    incomplete = sorted(i for i in found if len(seen[i]) != N)
    if incomplete:
        raise DataError(
            "urbangpt import",
            f"{len(incomplete)} samples lack some of the {N} regions (first: sample "
            f"{incomplete[0]} has {len(seen[incomplete[0]])})",
        )
    order = sorted(found)
    ids = np.array([first + i for i in order], dtype=np.int64)
    # UrbanGPT's own scoring takes |forecast|; done above so both agree.
    return TeacherPredictions.create(
        windows, ids, np.stack([found[i] for i in order]), model="urbangpt",
        source=[str(p) for p in paths], first_window=first,
    )


def import_npz(
    path: str | os.PathLike[str],
    windows: Windows,
    layout: str = "NTC",
    key: str | None = None,
) -> TeacherPredictions:
    """A whole-period teacher series (``NTC`` or ``TNC``) -> forecasts for every window."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            k = key or ("data" if "data" in z.files else z.files[0])
            if k not in z.files:
                raise DataError(path, f"no array {k!r} (has {z.files})")
            arr = np.asarray(z[k], dtype=np.float32)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(path, f"cannot read npz: {exc}") from exc
    layout = layout.upper()
    if layout not in ("NTC", "TNC"):
        raise DataError(path, f"layout must be NTC or TNC, got {layout!r}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise DataError(path, f"expected a 3-d {layout} array, got shape {arr.shape}")
    series = arr.transpose(1, 0, 2) if layout == "NTC" else arr  # (T, N, C)
    ds = windows.dataset
    want = (ds.num_slots, ds.num_regions, ds.num_channels)
    if series.shape != want:
        raise DataError(
            path,
            f"as {layout} this is (T, N, C) = {series.shape}, dataset has {want} "
            "(wrong --layout, period or region set?)",
        )
    if not np.isfinite(series).all():
        raise DataError(path, "contains NaN or infinity")
    ids = windows.all_ids
    preds = series[ids[:, None] + np.arange(windows.cfg.output_len)]
    return TeacherPredictions.create(windows, ids, preds, model=f"npz:{path.name}",
                                     source=str(path), layout=layout)
