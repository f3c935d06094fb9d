"""Zone polygons → centroids and contiguity graphs (pyshp reads the shapefile, shapely does geometry)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowdistill.data.errors import DataError


@dataclass
class Zones:
    """Polygons keyed by an id field; duplicated ids (NYC 56, 103) are merged into one geometry."""

    ids: list[str]
    names: list[str]
    geometries: list  # shapely geometries
    attributes: list[dict]

    def centroids(self) -> np.ndarray:
        return np.array([[g.centroid.x, g.centroid.y] for g in self.geometries], dtype=np.float64)

    def subset(self, ids: list[str], aliases: dict[str, str] | None = None) -> Zones:
        """Zones in the order of ``ids``; ``aliases`` maps an id the file lacks to one it has."""
        index = {z: i for i, z in enumerate(self.ids)}
        for z, alias in (aliases or {}).items():
            if z not in index and alias in index:
                index[z] = index[alias]
        missing = [z for z in ids if z not in index]
        if missing:
            raise DataError("zones", f"zone ids not in the zone table: {missing[:10]}")
        rows = [index[z] for z in ids]
        return Zones(
            ids=list(ids),
            names=[self.names[i] for i in rows],
            geometries=[self.geometries[i] for i in rows],
            attributes=[self.attributes[i] for i in rows],
        )

    def contiguity(self, tolerance: float = 0.0) -> np.ndarray:
        """0/1 matrix: 1 where two polygons touch or lie within ``tolerance`` (diagonal 0)."""
        from shapely.strtree import STRtree  # geo libraries load only when polygons are used

        n = len(self.geometries)
        adj = np.zeros((n, n), dtype=np.float32)
        tree = STRtree(self.geometries)
        for i, g in enumerate(self.geometries):
            probe = g.buffer(tolerance) if tolerance > 0 else g
            for j in tree.query(probe, predicate="intersects"):
                if j != i:
                    adj[i, j] = adj[j, i] = 1.0
        return adj


# The TLC shapefile labels zones 57 (Corona) and 104/105 (the islands) as 56 and 103.
NYC_ZONE_ALIASES = {"57": "56", "104": "103", "105": "103"}


def read_zones(path: str | Path, id_field: str, name_field: str) -> Zones:
    """Read polygons from a ``.shp`` (with its ``.dbf``/``.shx``), merging repeated ids."""
    import shapefile  # pyshp; loaded here so commands that never read polygons do not need it
    from shapely.geometry import shape

    path = Path(path)
    if not path.exists():
        raise DataError(path, "shapefile not found")
    try:
        reader = shapefile.Reader(str(path))
        fields = [f[0] for f in reader.fields[1:]]
        records = reader.shapeRecords()
    except Exception as exc:
        raise DataError(path, f"cannot read shapefile: {exc}") from exc
    for f in (id_field, name_field):
        if f not in fields:
            raise DataError(path, f"field {f!r} not in shapefile (fields: {fields})")
    merged: dict[str, tuple[str, object, dict]] = {}
    for rec in records:
        attrs = dict(zip(fields, rec.record, strict=False))
        raw = attrs[id_field]
        zid = str(int(raw)) if isinstance(raw, float | int) or str(raw).isdigit() else str(raw)
        geom = shape(rec.shape.__geo_interface__)
        if not geom.is_valid:
            geom = geom.buffer(0)
        if zid in merged:
            name, g0, a0 = merged[zid]
            merged[zid] = (name, g0.union(geom), a0)
        else:
            merged[zid] = (str(attrs[name_field]), geom, attrs)
    ids = sorted(merged, key=lambda z: (len(z), z))
    return Zones(
        ids=ids,
        names=[merged[z][0] for z in ids],
        geometries=[merged[z][1] for z in ids],
        attributes=[merged[z][2] for z in ids],
    )
