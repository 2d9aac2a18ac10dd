"""Linear probes, cross-validated over held-out folds: scikit-learn's multinomial logistic
regression on standardised activations, and the majority-class baseline on the same folds."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

MAX_ITERATIONS = 500
# scikit-learn's default is 1e-4. On tiny.en's phone frames (7,800 frames, 40 classes) 1e-3 moved
# held-out accuracy by under 0.007 (conv 0.472 -> 0.472, layer 2 0.712 -> 0.706, their control
# tasks 0.208 -> 0.203 and 0.087 -> 0.086) and took 2-2.5x fewer iterations, which is what keeps
# the default study for tiny.en and base within 10 minutes on 2 cores.
TOLERANCE = 1e-3


@dataclass
class Score:
    accuracy: float  # over every example, each predicted by the probe whose training fold left it out
    fold_std: float  # spread of the per-fold accuracies
    predictions: np.ndarray
    unconverged: int = 0  # folds whose fit stopped at MAX_ITERATIONS


def single_threaded():
    """BLAS and OpenMP on one thread while fitting. These fits are small, and on a busy 2-core
    machine two spinning BLAS threads made a 6,000 x 384 multinomial fit 35x slower (11 s, not 0.3 s);
    one thread also makes every result bit-for-bit repeatable."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def probe_score(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, regularization: float) -> Score:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    predictions = np.empty(len(labels), dtype=labels.dtype)
    unconverged = 0
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        if len(np.unique(labels[train])) < 2:  # e.g. the only group of the other class is in the test fold
            predictions[test] = labels[train][0]
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, tol=TOLERANCE, max_iter=MAX_ITERATIONS))
        with warnings.catch_warnings(record=True) as caught, single_threaded():
            warnings.simplefilter("always", ConvergenceWarning)
            probe.fit(features[train], labels[train])
            predictions[test] = probe.predict(features[test])
        unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return _score(predictions, labels, folds, unconverged)


def majority_score(labels: np.ndarray, folds: np.ndarray) -> Score:
    """Each test fold predicted as its training folds' most frequent label."""
    predictions = np.empty(len(labels), dtype=labels.dtype)
    for fold in np.unique(folds):
        values, counts = np.unique(labels[folds != fold], return_counts=True)
        predictions[folds == fold] = values[np.argmax(counts)]
    return _score(predictions, labels, folds)


def _score(predictions: np.ndarray, labels: np.ndarray, folds: np.ndarray, unconverged: int = 0) -> Score:
    correct = predictions == labels
    per_fold = [correct[folds == fold].mean() for fold in np.unique(folds)]
    return Score(float(correct.mean()), float(np.std(per_fold)), predictions, unconverged)


def confusion(labels: np.ndarray, predictions: np.ndarray, classes: list[str]) -> np.ndarray:
    """Rows: true class; columns: predicted; each row sums to 1 (0 for a class with no examples)."""
    index = {name: i for i, name in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)))
    np.add.at(counts, ([index[x] for x in labels.tolist()], [index[x] for x in predictions.tolist()]), 1)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0).astype(np.float32)
