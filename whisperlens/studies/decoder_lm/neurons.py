"""Semantic classes of decoder MLP neurons, against random directions and random word sets.

One streamed pass over the corpus (ActivationStream, teacher-forced on each clip's transcript)
reads the hook, e.g. decoder.blocks.0.mlp.hook_post, at every text token. Each token belongs to
a word of the transcript; per feature (a neuron, or a seeded random direction of the same
space) and per word, the largest activation and where it happened are kept. A feature's top
words are its `top_words` distinct words by that maximum, so a neuron that fires on one word
alone ("cheese" twenty times) does not pass for a food neuron; each word gets its semantic class
(similarity.semantic_class), and the feature the class most of its top words share. Random word
sets of the same size, drawn from the words the corpus has, give the share a class reaches by chance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from ...stream import ActivationStream
from .similarity import semantic_class

DOMINANT_SHARE = 0.5  # a feature has a class when at least half its top words are of it
NO_CLASS = "none"  # function words and words WordNet does not know
CONTEXT_WORDS = 3  # words shown either side of a top example


@dataclass
class WordMaxima:
    """Per distinct word of the corpus and per feature, the largest activation and where it was."""

    words: list[str]
    values: torch.Tensor  # (words, features)
    clips: torch.Tensor  # (words, features) int64: the clip (corpus index) of each maximum
    positions: torch.Tensor  # (words, features) int64: the word's index in that clip's transcript


def random_directions(width: int, count: int, seed: int) -> torch.Tensor:
    """(width, count) random unit directions, uniform on the sphere (normalised Gaussians), seeded.
    In 1536 dimensions they are all but orthogonal, and need no QR."""
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(width, count, generator=generator), dim=0)


def token_words(tokenizer, tokens: list[int], n_words: int) -> np.ndarray:
    """The transcript word each teacher-forced token belongs to (-1 for special tokens): a token
    that starts with a space starts the next word."""
    owner = np.full(len(tokens), -1)
    word = -1
    for position, token in enumerate(tokens):
        if token >= tokenizer.eot:
            continue
        if tokenizer.decode([token]).startswith(" "):
            word += 1
        if 0 <= word < n_words:
            owner[position] = word
    return owner


def harvest(model, corpus, hook: str, n_random: int, seed: int, batch_size: int, progress) -> WordMaxima:
    """Stream the corpus once; the features are the hook's coordinates (neurons), then `n_random`
    random directions of the same space."""
    stream = ActivationStream(model, corpus, [hook], teacher_forcing=True, mode="short", batch_size=batch_size,
                              progress=progress)
    index: dict[str, int] = {}
    values = clips = positions = None
    for batch in stream:
        activations = batch.valid(hook).float()
        if values is None:  # the first batch tells the hook's width
            directions = random_directions(activations.shape[1], n_random, seed)
            width = activations.shape[1] + n_random
            values = torch.full((0, width), -torch.inf)
            clips, positions = torch.zeros((0, width), dtype=torch.long), torch.zeros((0, width), dtype=torch.long)
        features = torch.cat([activations, activations @ directions], dim=1)
        rows = batch.rows(hook)
        frame_word = np.full(len(features), -1)
        frame_position = np.full(len(features), -1)
        for row, clip in enumerate(batch.clips):
            words = clip.text.split()
            owners = token_words(stream.tokenizer, batch.tokens[row, : batch.token_lengths[row]].tolist(), len(words))
            start = rows.offsets[row]
            for position, owner in enumerate(owners):
                if owner >= 0:
                    frame_word[start + position] = index.setdefault(words[owner].lower(), len(index))
                    frame_position[start + position] = owner
        grow = len(index) - len(values)
        if grow:
            values = torch.cat([values, torch.full((grow, values.shape[1]), -torch.inf)])
            clips = torch.cat([clips, torch.zeros((grow, clips.shape[1]), dtype=torch.long)])
            positions = torch.cat([positions, torch.zeros((grow, positions.shape[1]), dtype=torch.long)])
        for word in np.unique(frame_word[frame_word >= 0]):
            frames = np.flatnonzero(frame_word == word)
            best, where = features[frames].max(0)
            better = best > values[word]
            values[word] = torch.where(better, best, values[word])
            clips[word] = torch.where(better, torch.from_numpy(rows.clips[frames])[where], clips[word])
            positions[word] = torch.where(better, torch.from_numpy(frame_position[frames])[where], positions[word])
    return WordMaxima(list(index), values, clips, positions)


@dataclass
class Labels:
    top: np.ndarray  # (features, top_words): indices into WordMaxima.words, strongest first
    classes: np.ndarray  # (features, top_words) str: each top word's class (NO_CLASS where the feature stays <= 0)
    live: np.ndarray  # (features,) bool: the feature is positive somewhere (a dead GELU neuron's top words mean nothing)
    label: list[str]  # each feature's commonest class
    share: np.ndarray  # (features,) that class's share of its top words

    def kind_share(self, name: str) -> np.ndarray:
        """(features,) the share of each feature's top words in class `name`."""
        return (self.classes == name).mean(1)


def word_class(word: str) -> str:
    return semantic_class(word) or NO_CLASS


def label_features(maxima: WordMaxima, top_words: int) -> Labels:
    word_classes = np.array([word_class(word) for word in maxima.words])
    best = torch.topk(maxima.values.T, min(top_words, len(maxima.words)), dim=1)
    top = best.indices.numpy()
    classes = np.where(best.values.numpy() > 0, word_classes[top], NO_CLASS)  # a word it never fires on is no evidence
    found = [commonest_class(list(row)) for row in classes]
    live = (maxima.values.max(0).values > 0).numpy()
    return Labels(top, classes, live, [label for label, _ in found], np.array([share for _, share in found]))


def is_semantic(label: str) -> bool:
    """A class of meaning, not of part of speech: WordNet's noun and verb files, and numbers
    (adj.all and adv.all hold every adjective and adverb)."""
    return label.startswith(("noun.", "verb.")) or label == "number"


def commonest_class(classes: list[str]) -> tuple[str, float]:
    """The commonest class other than NO_CLASS (ties: the first to appear) and its share of all."""
    counts = Counter(name for name in classes if name != NO_CLASS)
    if not counts:
        return NO_CLASS, 0.0
    label, count = counts.most_common(1)[0]
    return label, count / len(classes)


def random_word_sets(words: list[str], count: int, size: int, seed: int) -> list[tuple[str, float]]:
    """The commonest class and its share in each of `count` random sets of `size` distinct corpus words."""
    classes = [word_class(word) for word in words]
    rng = np.random.default_rng(seed)
    return [commonest_class([classes[i] for i in rng.choice(len(words), size, replace=False)]) for _ in range(count)]


def context(text: str, position: int) -> str:
    """The transcript around word `position`, the word in brackets."""
    words = text.split()
    shown = words[max(0, position - CONTEXT_WORDS): position] + [f"[{words[position]}]"] \
        + words[position + 1: position + 1 + CONTEXT_WORDS]
    return " ".join(shown)
