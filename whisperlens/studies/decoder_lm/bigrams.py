"""Bigrams without audio, measured against real English text.

The reference is the installed fortune databases (resources.fortunes): lowercased, split into
runs of words at any punctuation or digit (a comma or full stop between two words is not a
bigram the decoder would write as two adjacent words), counted over the `size` most frequent
words whose " word" is one token.

The decoder's next-word distribution after the prompt " w1" is read over the same words: a
word's probability is the sum of its lowercase and capitalised tokens' (" the", " The"),
renormalised over the vocabulary, so both the prompted distribution and the no-prompt one (the
start sequence alone, which expects a capitalised first word) are compared on equal terms.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
BREAK = re.compile(r"[^a-z'\s]+")  # punctuation and digits end a run of words
TOP_K = (1, 5, 10)
MIN_FOLLOWERS = 20  # a prompt word enters the rank correlation when the text follows it by a vocabulary word this often


@dataclass
class ReferenceBigrams:
    words: list[str]  # the vocabulary, most frequent first
    unigrams: np.ndarray  # (V,) occurrences in the text
    bigrams: np.ndarray  # (V, V) occurrences of word i followed by word j
    texts: int  # fortunes read
    text_words: int  # words in them


def reference_bigrams(texts: Sequence[str], size: int, keep: Callable[[str], bool]) -> ReferenceBigrams:
    runs = [WORD.findall(run) for text in texts for run in BREAK.split(text.lower())]
    counts = Counter(word for run in runs for word in run)
    words = [word for word, _ in counts.most_common() if keep(word)][:size]
    index = {word: i for i, word in enumerate(words)}
    pairs = Counter((index[a], index[b]) for run in runs for a, b in zip(run, run[1:]) if a in index and b in index)
    bigrams = np.zeros((len(words), len(words)), dtype=np.int64)
    if pairs:
        rows, columns = zip(*pairs)
        bigrams[list(rows), list(columns)] = list(pairs.values())
    return ReferenceBigrams(words, np.array([counts[word] for word in words], dtype=np.int64), bigrams, len(texts),
                            sum(counts.values()))


def word_columns(tokenizer, words: Sequence[str]) -> tuple[torch.Tensor, np.ndarray]:
    """The vocabulary's tokens (" w" and " W" where each is one token) and the word each is a form of."""
    columns, owners = [], []
    for position, word in enumerate(words):
        for form in dict.fromkeys((word, word.capitalize())):
            tokens = tokenizer.encode(" " + form)
            if len(tokens) == 1:
                columns.append(tokens[0])
                owners.append(position)
    return torch.tensor(columns), np.array(owners)


def word_log_probs(token_log_probs: torch.Tensor, owners: np.ndarray, n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, log P(word) renormalised over the vocabulary, and the share of the whole
    distribution the vocabulary holds."""
    probabilities = torch.zeros(token_log_probs.shape[0], n_words, dtype=torch.float64)
    probabilities.index_add_(1, torch.from_numpy(owners), token_log_probs.double().exp())
    mass = probabilities.sum(1, keepdim=True)
    return (probabilities / mass).log().numpy(), mass[:, 0].numpy()


def score(log_q: np.ndarray, bigrams: np.ndarray) -> dict:
    """How well rows of next-word log-probabilities (V, V), or one row shared by every prompt,
    predict the text's bigram counts: cross-entropy (bits per word), top-k hit rates (shares of
    bigram occurrences whose second word is among the k likeliest) and the mean Spearman
    correlation per prompt word between predicted probabilities and observed counts."""
    from scipy.stats import rankdata

    log_q = np.broadcast_to(log_q, bigrams.shape)
    total = bigrams.sum()
    ranks = _ranks(log_q)
    seen = bigrams > 0  # a pair never seen adds nothing, even where the model gives it no chance
    result = {"cross_entropy_bits": float(-(bigrams[seen] * log_q[seen]).sum() / total / np.log(2))}
    for k in TOP_K:
        result[f"top{k}"] = float((bigrams * (ranks < k)).sum() / total)
    rows = np.flatnonzero(bigrams.sum(1) >= MIN_FOLLOWERS)
    result["spearman"] = float(np.nanmean(row_correlations(rankdata(log_q[rows], axis=1), rankdata(bigrams[rows], axis=1)))) \
        if len(rows) else float("nan")
    result["spearman_prompts"] = int(len(rows))
    return result


def row_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of `a` with the same row of `b` (of ranks: Spearman's rho, as
    scipy.stats.spearmanr gives it, for all rows in one step); nan for a constant row."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def _ranks(log_q: np.ndarray) -> np.ndarray:
    """Each word's rank in its row, 0 for the likeliest (ties in the vocabulary's order)."""
    order = np.argsort(-log_q, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(log_q.shape[1])[None, :].repeat(len(log_q), 0), axis=1)
    return ranks


def top_followers(row: np.ndarray, words: Sequence[str], count: int) -> list[str]:
    return [words[i] for i in np.argsort(-row, kind="stable")[:count]]
