"""How alike two words are, by sound and by meaning, and a word's semantic class.

- sound: 1 - (phone edit distance / the longer pronunciation's length), over CMUdict
  pronunciations without stress; the best pair of pronunciations counts. rug/mug: 1 - 1/3.
- meaning: Wu-Palmer similarity in WordNet's hypernym tree (2·depth(common ancestor) /
  (depth(a) + depth(b))), the best pair among each word's first MEANING_SENSES senses.
- class: "number" for numerals and number words, else the lexicographer file (noun.food,
  verb.motion, noun.person, ...) of the word's most frequent WordNet sense.

Function words (scikit-learn's English stop-word list, less its number words) have no meaning score and no class:
WordNet gives "in" the senses inch and Indiana, and "a" vitamin A.
"""

from __future__ import annotations

import functools
import re

from ...transcripts import edit_counts
from .resources import pronunciations, wordnet

MEANING_SENSES = 3  # senses per word compared: the commonest carry the meaning a listener would expect
NUMERAL = re.compile(r"\d+(st|nd|rd|th|s)?")
NUMBER_SENSES = ("cardinal.a.02", "ordinal.a.02")  # WordNet's adjectives "five" and "fifth" are similar to these


@functools.cache
def stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def sound_similarity(a: str, b: str) -> float | None:
    """None when either word has no CMUdict pronunciation."""
    found = pronunciations()
    first, second = found.get(a.lower()), found.get(b.lower())
    if not first or not second:
        return None
    return max(1 - edit_counts(x, y).errors / max(len(x), len(y), 1) for x in first for y in second)


@functools.cache
def is_number(word: str) -> bool:
    """Numerals (15, 8th) and number words (five, fifth, hundred)."""
    word = word.lower()
    return bool(NUMERAL.fullmatch(word)) or (word.isalpha() and any(
        similar.name() in NUMBER_SENSES for sense in wordnet().synsets(word) for similar in sense.similar_tos()))


@functools.cache
def senses(word: str) -> tuple:
    """The word's WordNet senses (morphological variants included: "threw" -> throw), none for a
    function word. scikit-learn's stop-word list holds the number words too; they keep their senses."""
    word = word.lower()
    if not word.isalpha() or (word in stop_words() and not is_number(word)):
        return ()
    return tuple(wordnet().synsets(word))


def meaning_similarity(a: str, b: str) -> float | None:
    """None when either word has no WordNet sense; 0 for senses WordNet cannot relate (a noun and a verb)."""
    first, second = senses(a)[:MEANING_SENSES], senses(b)[:MEANING_SENSES]
    if not first or not second:
        return None
    return max(x.wup_similarity(y) or 0.0 for x in first for y in second)


def same_lemma(a: str, b: str) -> bool:
    """The same word in another form: cat/cats, throw/threw, the/The."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    return bool(_base_forms(a) & _base_forms(b))


@functools.cache
def _base_forms(word: str) -> frozenset[str]:
    reader = wordnet()
    return frozenset(form for pos in "nvar" for form in [reader.morphy(word, pos)] if form)


@functools.cache
def semantic_class(word: str) -> str | None:
    """None for function words and words WordNet does not know."""
    if is_number(word):
        return "number"
    found = senses(word)
    if not found:
        return None
    return max(found, key=lambda sense: _sense_count(sense, word.lower())).lexname()  # max keeps WordNet's order on ties


def _sense_count(sense, word: str) -> int:
    """How often the sense was tagged in WordNet's sense-tagged corpus (cntlist.rev), for this word's lemma."""
    bases = _base_forms(word) | {word}
    return sum(lemma.count() for lemma in sense.lemmas() if lemma.name().lower() in bases)
