"""Cross-validation folds over whole held-out units (voices or utterances).

Every example of a group lands in the same fold, so a test fold never shares a voice (or an
utterance) with the probe's training data: a synthetic voice is easy to recognise, and a probe
that only recognised voices would otherwise look as if it had learnt the task.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def group_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """The fold (0..n_folds-1) of each example.

    Groups are shuffled by a seeded generator, ordered by their most frequent label (stable, so
    the shuffle holds within a label) and dealt round-robin: each fold then holds about the same
    number of groups, and the groups of every label are spread over the folds, so a label with
    at least n_folds groups is in every test fold.
    """
    names = sorted(set(groups.tolist()))
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    dominant = {}
    for name in shuffled:
        dominant[name] = Counter(labels[groups == name].tolist()).most_common(1)[0][0]
    dealt = sorted(shuffled, key=lambda name: dominant[name])
    fold_of = {name: position % n_folds for position, name in enumerate(dealt)}
    return np.array([fold_of[name] for name in groups.tolist()], dtype=np.int64)


def shared_groups(groups: np.ndarray, folds: np.ndarray) -> set[str]:
    """Groups found in more than one fold (none, by construction): for tests and for a check."""
    seen: dict[str, set[int]] = {}
    for group, fold in zip(groups.tolist(), folds.tolist(), strict=True):
        seen.setdefault(group, set()).add(fold)
    return {group for group, found in seen.items() if len(found) > 1}
