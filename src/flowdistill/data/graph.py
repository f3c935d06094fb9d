"""Neighbour ranking on the region graph, for the spatial correlation loss (K_r nearest regions)."""

from __future__ import annotations

from collections import deque

import numpy as np


def hop_distances(adjacency: np.ndarray) -> np.ndarray:
    """All-pairs shortest hop counts on the unweighted graph (``inf`` where unreachable)."""
    a = np.asarray(adjacency) > 0
    n = a.shape[0]
    nbrs = [np.flatnonzero(a[i] & (np.arange(n) != i)) for i in range(n)]
    dist = np.full((n, n), np.inf)
    for s in range(n):
        dist[s, s] = 0
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for v in nbrs[u]:
                if dist[s, v] == np.inf:
                    dist[s, v] = dist[s, u] + 1
                    queue.append(v)
    return dist


def nearest_regions(
    adjacency: np.ndarray,
    k: int = 8,
    centroids: np.ndarray | None = None,
    volume: np.ndarray | None = None,
) -> np.ndarray:
    """(N, k) indices of each region's k nearest other regions.

    Ranked by hop distance on the graph; ties are broken by centroid distance when centroids are
    known, else by larger trip volume, then by index. Unreachable regions come last, so every row
    has k entries as long as N > k.
    """
    n = adjacency.shape[0]
    if not 0 < k < n:
        raise ValueError(f"K_r must be between 1 and N-1={n - 1}, got {k}")
    hops = hop_distances(adjacency)
    if centroids is not None:
        c = np.asarray(centroids, dtype=np.float64)
        tie = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    elif volume is not None:
        tie = np.broadcast_to(-np.asarray(volume, dtype=np.float64)[None, :], (n, n))
    else:
        tie = np.zeros((n, n))
    out = np.empty((n, k), dtype=np.int64)
    idx = np.arange(n)
    for s in range(n):
        others = idx[idx != s]
        order = np.lexsort((others, tie[s, others], hops[s, others]))
        out[s] = others[order[:k]]
    return out
