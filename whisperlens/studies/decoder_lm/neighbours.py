"""Nearest tokens in the decoder's tied token embedding, scored by sound and by meaning.

Methods, compared rather than assumed:
- raw: cosine over the whole vocabulary, as the seeds plotted;
- words: cosine among word tokens only (" word", letters only, with a CMUdict pronunciation);
- centred: among word tokens, less their mean embedding;
- centred-pc1, centred-pc2: also less their top one or two principal directions.

A token whose text is the query in another case or spelling (" Cat", "cat") is not a neighbour;
neighbours are distinct words. Each neighbour is "alike" by sound (or meaning) when its score
reaches the 95th percentile of the scores of random word tokens of the query's frequency (the
baseline), and is counted as the same word (cat/cats), sound and meaning, sound only, meaning
only, neither, or not a word (no pronunciation: `______`, `###`, kana).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from .similarity import meaning_similarity, same_lemma, senses, sound_similarity

METHODS = ("raw", "words", "centred", "centred-pc1", "centred-pc2")
CATEGORIES = ("same word", "sound and meaning", "sound only", "meaning only", "neither", "not a word")
WORD_TOKEN = re.compile(r" [A-Za-z]+")
FREQUENCY_BINS = 20  # random baseline words come from the query's twentieth of the word tokens by BPE rank
ALIKE_PERCENTILE = 95


@dataclass
class Embedding:
    """The token embedding and its word tokens, with each method's unit vectors."""

    texts: list[str]  # every token's text
    words: np.ndarray  # ids of the word tokens, ascending
    vectors: dict[str, torch.Tensor]  # method -> (candidates, d) unit vectors
    candidates: dict[str, np.ndarray]  # method -> the token ids its rows stand for

    @classmethod
    def of(cls, model, tokenizer, has_pronunciation) -> Embedding:
        weight = model.decoder.token_embedding.weight.detach().float().cpu()
        texts = [tokenizer.decode([token]) for token in range(tokenizer.eot)]  # the text tokens; specials follow eot
        words = np.array([token for token, text in enumerate(texts)
                          if WORD_TOKEN.fullmatch(text) and has_pronunciation(text.strip().lower())])
        word_vectors = weight[torch.from_numpy(words)]
        centred = word_vectors - word_vectors.mean(0)
        _, _, components = torch.linalg.svd(centred, full_matrices=False)  # rows: principal directions
        spaces = {"raw": weight[: len(texts)], "words": word_vectors, "centred": centred}
        for count in (1, 2):
            top = components[:count]
            spaces[f"centred-pc{count}"] = centred - centred @ top.T @ top
        vectors = {name: torch.nn.functional.normalize(space, dim=1) for name, space in spaces.items()}
        candidates = {name: np.arange(len(texts)) if name == "raw" else words for name in METHODS}
        return cls(texts, words, vectors, candidates)

    def form(self, token: int) -> str:
        return self.texts[token].strip().lower()

    def ranking(self, method: str, token: int) -> np.ndarray | None:
        """Every candidate token, nearest first (the query itself and its other forms left out),
        or None when the method does not hold the token."""
        rows = self.candidates[method]
        row = np.searchsorted(rows, token)
        if row >= len(rows) or rows[row] != token:
            return None
        vectors = self.vectors[method]
        order = rows[torch.argsort(vectors @ vectors[row], descending=True).numpy()]
        query = self.form(token)
        return np.array([t for t in order if self.form(t) != query])

    def neighbours(self, method: str, token: int, count: int) -> list[tuple[int, float]] | None:
        """The `count` nearest distinct words (the first token of each form) with their cosines."""
        rows = self.candidates[method]
        row = np.searchsorted(rows, token)
        if row >= len(rows) or rows[row] != token:
            return None
        vectors = self.vectors[method]
        cosines = vectors @ vectors[row]
        query, width = self.form(token), 3 * count + 10
        while True:  # the nearest few dozen hold `count` distinct words, but for a query with many forms
            top = torch.topk(cosines, min(width, len(rows)))
            chosen, seen = [], {query}
            for index, cosine in zip(top.indices.tolist(), top.values.tolist()):
                form = self.form(int(rows[index]))
                if form not in seen:
                    seen.add(form)
                    chosen.append((int(rows[index]), cosine))
            if len(chosen) >= count or width >= len(rows):
                return chosen[:count]
            width *= 4


def queries(embedding: Embedding, count: int, seed: int) -> np.ndarray:
    """Lowercase word tokens with a WordNet sense (content words): all, or the first `count` in a
    seeded shuffle (looking up only as many words as that takes)."""
    lowercase = [t for t in embedding.words if embedding.texts[t] == embedding.texts[t].lower()]
    order = np.random.default_rng(seed).permutation(lowercase) if count else lowercase
    found = []
    for token in order:
        if senses(embedding.form(int(token))):
            found.append(int(token))
            if len(found) == count:
                break
    return np.sort(np.array(found, dtype=np.int64))


def frequency_matched(embedding: Embedding, query: int, count: int, rng: np.random.Generator) -> list[int]:
    """`count` random word tokens from the query's bin by BPE rank. GPT-2's byte-pair merges were
    learnt in order of frequency, so a token's id ranks how common its text is."""
    bins = np.array_split(embedding.words, FREQUENCY_BINS)
    same_bin = next(b for b in bins if query <= b[-1])
    query_form = embedding.form(query)
    pool = [t for t in same_bin if embedding.form(t) != query_form]
    return [int(t) for t in rng.choice(pool, count, replace=False)]


def pair_scores(embedding: Embedding, query: int, others: list[int], cache: dict) -> list[dict]:
    """Sound and meaning scores (None where undefined) and whether each other token is the same word."""
    query_form = embedding.form(query)
    scored = []
    for other in others:
        form = embedding.form(other)
        key = (query_form, form)
        if key not in cache:
            is_word = form.isalpha()
            cache[key] = {"sound": sound_similarity(query_form, form) if is_word else None,
                          "meaning": meaning_similarity(query_form, form) if is_word else None,
                          "same": is_word and same_lemma(query_form, form)}
        scored.append(cache[key])
    return scored


def thresholds(baseline: list[dict]) -> dict[str, float]:
    """The scores above which a pair counts as alike: the baseline's 95th percentile."""
    return {kind: float(np.percentile([s[kind] or 0.0 for s in baseline], ALIKE_PERCENTILE)) for kind in ("sound", "meaning")}


def category(score: dict, limits: dict[str, float]) -> str:
    if score["sound"] is None and score["meaning"] is None:
        return "not a word"
    if score["same"]:
        return "same word"
    sound = (score["sound"] or 0.0) >= limits["sound"]
    meaning = (score["meaning"] or 0.0) >= limits["meaning"]
    return {(True, True): "sound and meaning", (True, False): "sound only", (False, True): "meaning only",
            (False, False): "neither"}[(sound, meaning)]


def summarise(scores: list[dict], limits: dict[str, float]) -> dict:
    """Mean sound and meaning scores (undefined counts as 0: a junk token is not alike) and the
    share of each category."""
    kinds = [category(score, limits) for score in scores]
    return {"pairs": len(scores),
            "sound": float(np.mean([s["sound"] or 0.0 for s in scores])),
            "meaning": float(np.mean([s["meaning"] or 0.0 for s in scores])),
            "shares": {name: kinds.count(name) / len(kinds) for name in CATEGORIES},
            "sensible": sum(kind not in ("neither", "not a word") for kind in kinds) / len(kinds)}
