"""Found peaks matched to true ones: what the demo pipeline's recall and precision count.

Its own module: the pipeline's Tasks and its quick-look figure both count
matches, and neither should import the other for it.
"""

from __future__ import annotations

from typing import Any


def match_peaks(found: Any, truth: Any, radius: float) -> int:
    """How many true positions have a found peak within ``radius`` (one-to-one, greedy)."""
    import numpy as np

    if len(found) == 0 or len(truth) == 0:
        return 0
    dist = np.hypot(found[:, None, 0] - truth[None, :, 0], found[:, None, 1] - truth[None, :, 1])
    matched = 0
    used_found: set[int] = set()
    used_truth: set[int] = set()
    for flat in np.argsort(dist, axis=None):
        i, j = np.unravel_index(flat, dist.shape)
        if dist[i, j] > radius:
            break
        if i in used_found or j in used_truth:
            continue
        used_found.add(int(i))
        used_truth.add(int(j))
        matched += 1
    return matched
