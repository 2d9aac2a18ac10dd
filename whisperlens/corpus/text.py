"""English sentences from a small grammar over the shipped vocabulary.

A grammar rather than a fixed list: a few hundred words in a dozen patterns give millions of
distinct, phonetically varied sentences, and the shipped text stays a few kilobytes.
Every draw comes from the `random.Random` passed in, so a clip's sentence depends on its
own seed only.
"""

from __future__ import annotations

import random

from .wordlists import (
    ADJECTIVES,
    ADVERBS,
    DETERMINERS,
    INTRANSITIVE_VERBS,
    NAMES,
    NOUNS,
    PLACES,
    PREPOSITIONS,
    TIMES,
    TRANSITIVE_VERBS,
)

PRONOUNS = "i we they he she you".split()


def _noun_phrase(rng: random.Random) -> str:
    words = [rng.choice(DETERMINERS)]
    if rng.random() < 0.6:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS))
    phrase = " ".join(words)
    # "a" before a vowel letter reads wrongly to every engine's prosody model.
    if phrase.startswith("a ") and phrase[2] in "aeiou":
        phrase = "an" + phrase[1:]
    return phrase


def _subject(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(NAMES)
    if roll < 0.45:
        return rng.choice(PRONOUNS)
    return _noun_phrase(rng)


PATTERNS = (
    lambda r: f"{_subject(r)} {r.choice(TRANSITIVE_VERBS)} {_noun_phrase(r)}",
    lambda r: f"{_subject(r)} {r.choice(TRANSITIVE_VERBS)} {_noun_phrase(r)} {r.choice(PREPOSITIONS)} {_noun_phrase(r)}",
    lambda r: f"{_subject(r)} {r.choice(INTRANSITIVE_VERBS)} {r.choice(ADVERBS)}",
    lambda r: f"{_subject(r)} {r.choice(INTRANSITIVE_VERBS)} {r.choice(PREPOSITIONS)} {r.choice(PLACES)}",
    lambda r: f"{r.choice(TIMES)} {_subject(r)} {r.choice(INTRANSITIVE_VERBS)}",
    lambda r: f"did {_subject(r)} see {_noun_phrase(r)}",
    lambda r: f"where is {_noun_phrase(r)}",
    lambda r: f"please put {_noun_phrase(r)} {r.choice(PREPOSITIONS)} {_noun_phrase(r)}",
    lambda r: f"{_noun_phrase(r)} was {r.choice(ADJECTIVES)} and {r.choice(ADJECTIVES)}",
    lambda r: f"{r.choice(NAMES)} and {r.choice(NAMES)} {r.choice(TRANSITIVE_VERBS)} {_noun_phrase(r)} {r.choice(TIMES)}",
    lambda r: f"i think {_noun_phrase(r)} {r.choice(TRANSITIVE_VERBS)} {_noun_phrase(r)}",
    lambda r: f"{_subject(r)} {r.choice(TRANSITIVE_VERBS)} {_noun_phrase(r)} {r.choice(ADVERBS)}",
)


def english_sentence(rng: random.Random) -> str:
    """One lower-case sentence of plain words, without punctuation."""
    return rng.choice(PATTERNS)(rng)


def vocabulary() -> set[str]:
    """Every word `english_sentence` can produce."""
    words = set(PRONOUNS) | {"did", "see", "where", "is", "please", "put", "was", "and", "think", "an"}
    for group in (NOUNS, NAMES, ADJECTIVES, TRANSITIVE_VERBS, INTRANSITIVE_VERBS, ADVERBS,
                  PREPOSITIONS, DETERMINERS, PLACES, TIMES):
        for entry in group:
            words.update(entry.split())
    return words
