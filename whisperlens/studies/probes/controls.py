"""What a probe's accuracy is measured against, besides the majority class: a control task
(Hewitt & Liang 2019) and a Whisper of the same size with random weights."""

from __future__ import annotations

import numpy as np

from ...models.random import random_whisper  # noqa: F401  (the control model; it lives below the studies, for Ray workers)
from .fit import single_threaded


def control_labels(acoustics: np.ndarray, labels: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Hewitt & Liang's control task, with acoustic clusters as the types.

    Hewitt & Liang give each word type a random label; a frame has no word type of its own, so
    the examples are clustered by their log-mel spectrum (k-means, model-free) and each cluster
    is given a random label of the task's. Every example takes its cluster's label, so the task
    is solvable only by memorising which sounds go with which arbitrary label: a probe's accuracy
    on it is its capacity to memorise, and accuracy minus control accuracy (selectivity) is what
    the activations encode of the task beyond that.

    Clusters get labels in proportion to the task's label frequencies (dealt, then shuffled), so
    the control task has the real task's classes in about the same shares. There must be several
    clusters per class: k-means cells are convex, so with one cluster per label the control task
    would be linearly separable in the log-mel itself, and no test of memorisation.
    """
    from sklearn.cluster import KMeans

    standardised = (acoustics - acoustics.mean(axis=0)) / (acoustics.std(axis=0) + 1e-6)
    n_clusters = max(2, min(n_clusters, len(np.unique(standardised, axis=0))))
    with single_threaded():
        clusters = KMeans(n_clusters, n_init=3, random_state=seed).fit_predict(standardised)
    values, counts = np.unique(labels, return_counts=True)
    # Evenly spaced quantiles of the label distribution: each label gets its share of the clusters
    # (at least one, for a label of at least 1/n_clusters of the examples).
    shares = np.cumsum(counts) / counts.sum()
    dealt = values[np.searchsorted(shares, (np.arange(n_clusters) + 0.5) / n_clusters)]
    cluster_label = np.random.default_rng(seed).permutation(dealt)
    return cluster_label[clusters]
