"""Fetch the public datasets from their sources (needs internet; nothing here runs during training).

Every file is pinned to a commit and to its SHA-256, streamed to a temporary name beside its
destination, checked, and only then renamed: an interrupted or tampered download leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdistill.data.errors import DataError
from flowdistill.data.sources import resolve_data_dir

_RAW = "https://raw.githubusercontent.com"
_TAXI_BIKE = f"{_RAW}/Evens1sen/Deep-NYC-Taxi-Bike/097aa2d8177392339b089ed940c6ccc2d469dd97"
_NYC_SHAPES = f"{_RAW}/toddwschneider/nyc-taxi-data/bb53482d4caaa83f08d11f4681e1f0ce29bc9198"
_CHI_SHAPES = f"{_RAW}/toddwschneider/chicago-taxi-data/205496921ba14b2c3fb7d5102fa5c092d4083272"
_URBANGPT = f"{_RAW}/HKUDS/UrbanGPT/79b834ed93763f74b6590703aeaaba39eb000126"
_FLOWDISTILL = f"{_RAW}/zxc2012/FlowDistill/168970ba69e89cafb26e99625ee221d63a7492a7"


@dataclass(frozen=True)
class RemoteFile:
    """One file: where it goes under the data dir, where it comes from, what it must hash to."""

    dest: str
    url: str
    sha256: str


_NYC_ZONES = (
    RemoteFile(
        "nyc-taxi-zones/taxi_zones.shp",
        f"{_NYC_SHAPES}/shapefiles/taxi_zones/taxi_zones.shp",
        "70a5ec90bf0b6a4609b0846638e5331fee861830633cf29c4f6ed846d5d4c2ea",
    ),
    RemoteFile(
        "nyc-taxi-zones/taxi_zones.shx",
        f"{_NYC_SHAPES}/shapefiles/taxi_zones/taxi_zones.shx",
        "830c7309d34c9a617757a3c821f9fc3868c9442a239ea855cd4e49f3b566597c",
    ),
    RemoteFile(
        "nyc-taxi-zones/taxi_zones.dbf",
        f"{_NYC_SHAPES}/shapefiles/taxi_zones/taxi_zones.dbf",
        "8aada81ec3f00bdfdf1f7c21302d0f7f45d1b99e8f8b1f60e40ef9180c42a523",
    ),
    RemoteFile(
        "nyc-taxi-zones/taxi_zones.prj",
        f"{_NYC_SHAPES}/shapefiles/taxi_zones/taxi_zones.prj",
        "496a9166511a534dc8eff570dac27cdc91c817fe605e463b7ca70b25e94fbfd9",
    ),
    RemoteFile(
        "nyc-taxi-zones/zone_poi.json",
        f"{_URBANGPT}/instruction_generate/poi/zone_poi.json",
        "82ff530b9652767244e22d80f26e4246ddcce401314bbbe9f00343ea88a5bfb6",
    ),
)

_NYC_MANHATTAN = (
    RemoteFile(
        "nyc-taxi-manhattan/201901-202012-NYCtaxi-inflow.npz",
        f"{_TAXI_BIKE}/data-NYCTaxi/30min/201901-202012-NYCtaxi-inflow.npz",
        "6fb7b9720ac4548fb63b05b0023236469ae7c16ae8491044cff701fb7d7659bb",
    ),
    RemoteFile(
        "nyc-taxi-manhattan/201901-202012-NYCtaxi-outflow.npz",
        f"{_TAXI_BIKE}/data-NYCTaxi/30min/201901-202012-NYCtaxi-outflow.npz",
        "233b1e11e53c86acd7233f7960bb4301780ba2ca92ff6275dabf31d6712036e3",
    ),
    RemoteFile(
        "nyc-taxi-manhattan/manhattan_zones.csv",
        f"{_TAXI_BIKE}/data-NYCZones/zones/manhattan_zones.csv",
        "8b06eb185812d95c19a84951861b9a40a16672b522694238ff364cd369e850ec",
    ),
    RemoteFile(
        "nyc-taxi-manhattan/W_adj_matrix.csv",
        f"{_TAXI_BIKE}/data-NYCZones/adjmatrix/W_adj_matrix.csv",
        "1822444cccf3545b6d2b410c0f36071f495a5f5ba6e65020f15f07359a60f9a9",
    ),
    RemoteFile(
        "nyc-taxi-manhattan/W_od_taxi.csv",
        f"{_TAXI_BIKE}/data-NYCZones/adjmatrix/W_od_taxi.csv",
        "c24e515b328d68c481861074233995b6c606386cd81f1f7b8827d7050ebf4125",
    ),
)

_CHICAGO = (
    RemoteFile(
        "chicago/community_areas.shp",
        f"{_CHI_SHAPES}/shapefiles/community_areas/community_areas.shp",
        "e28252d1155e84d7c7828db4b1a84792b073b5a41eca1b9b3bb521ece446fbff",
    ),
    RemoteFile(
        "chicago/community_areas.shx",
        f"{_CHI_SHAPES}/shapefiles/community_areas/community_areas.shx",
        "7e618e1e8657cf04c38255dcbc639f0a9e39306824799b70552378a80711756b",
    ),
    RemoteFile(
        "chicago/community_areas.dbf",
        f"{_CHI_SHAPES}/shapefiles/community_areas/community_areas.dbf",
        "688135583049688002d28d6ff714d8d77737f4902a5799be7b8698a913c408bf",
    ),
    RemoteFile(
        "chicago/community_areas.prj",
        f"{_CHI_SHAPES}/shapefiles/community_areas/community_areas.prj",
        "6fca3c99acc500cfaded6e2ca1bb4d48ba2a15c13eccf24faa1811e0730cd4a7",
    ),
    RemoteFile(
        "chicago/CHI_TAXI_rn_adj.npy",
        f"{_FLOWDISTILL}/data/CHI_TAXI/CHI_TAXI_rn_adj.npy",
        "50db4b475454886ff7664951249502ab816213e42a9bb1149cccc62d7d8b72fb",
    ),
    RemoteFile(
        "chicago/CHI_taxi_POIs.json",
        f"{_URBANGPT}/instruction_generate/poi/CHI_taxi_POIs.json",
        "43a5194b29aa377ef04bcbf54e64eacc747f8eb22a01449bf463182a1ff3a92e",
    ),
)

# nyc-taxi-manhattan brings the zone polygons and POIs too: its loader uses them for centroids
# and for the teacher's region text.
DATASETS: dict[str, tuple[RemoteFile, ...]] = {
    "nyc-taxi-manhattan": _NYC_MANHATTAN + _NYC_ZONES,
    "nyc-taxi-zones": _NYC_ZONES,
    "chicago": _CHICAGO,
}

urlopen = urllib.request.urlopen  # replaced in tests
CHUNK = 1 << 20


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch_file(item: RemoteFile, root: Path, timeout: float = 60.0) -> Path:
    """Download one file to ``root/item.dest`` (temp name, SHA-256 check, rename)."""
    dest = root / item.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urlopen(item.url, timeout=timeout) as resp:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        h.update(block)
                        out.write(block)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise DataError(
                    item.url, f"download failed ({reason}); is this machine online?"
                ) from exc
        if h.hexdigest() != item.sha256:
            raise DataError(
                item.url, f"checksum mismatch: got sha256 {h.hexdigest()}, expected {item.sha256}"
            )
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download(
    dataset: str, data_dir: str | os.PathLike[str] | None = None, force: bool = False
) -> list[dict[str, Any]]:
    """Fetch every file of ``dataset`` that is missing or wrong; report what happened per file."""
    if dataset not in DATASETS:
        raise DataError(dataset, f"unknown dataset; choose from {sorted(DATASETS)}")
    root = resolve_data_dir(data_dir)
    report = []
    for item in DATASETS[dataset]:
        dest = root / item.dest
        if not force and dest.exists() and sha256_of(dest) == item.sha256:
            report.append({"file": str(dest), "status": "present"})
            continue
        fetch_file(item, root)
        report.append({"file": str(dest), "status": "downloaded"})
    return report
