"""Seeded train/val split, stratified so each class keeps its share in both splits."""

from __future__ import annotations

import random


def stratified_split(strata: dict[str, str], train_ratio: float, seed: int) -> dict[str, str]:
    """Map each id to 'train' or 'val'. Ids are sorted first so the result depends only on the seed.

    Each stratum (e.g. M, B, N) with at least two images puts at least one in each split.
    """
    rng = random.Random(seed)
    by_stratum: dict[str, list[str]] = {}
    for cid in sorted(strata):
        by_stratum.setdefault(strata[cid], []).append(cid)
    split: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        ids = by_stratum[stratum]
        rng.shuffle(ids)
        n_train = round(len(ids) * train_ratio)
        if len(ids) >= 2:
            n_train = min(max(n_train, 1), len(ids) - 1)
        for i, cid in enumerate(ids):
            split[cid] = "train" if i < n_train else "val"
    return split
