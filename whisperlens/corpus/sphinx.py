"""The pocketsphinx forced aligner: word and phone intervals of known words in audio.

pocketsphinx (PyPI) ships a US English acoustic model and CMUdict, so it aligns offline.
It needs silence around the speech (TTS clips may start at 0 s), so each clip is padded,
and it cannot align words missing from its dictionary: those clips get None.

The bottom layer of the corpus's alignment code: `real.py` labels recordings with it and
`align.py` checks the engines' timings against it; it knows nothing of clips or corpora.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .phones import ARPABET, Interval

PADDING_SECONDS = 0.25
# Low white noise over the whole padded clip: TTS audio has stretches of exact digital
# silence, on which pocketsphinx's features degenerate and its beam loses the path
# (most espeak-ng clips failed to align without it). Fixed seed: same input, same output.
DITHER_AMPLITUDE = 1e-3
FRAMES_PER_SECOND = 100  # pocketsphinx's default frame rate
NON_WORDS = {"<s>", "</s>", "<sil>", "[NOISE]"}


@lru_cache(maxsize=1)
def _decoder():
    from pocketsphinx import Decoder

    return Decoder(lm=None, loglevel="FATAL")


@lru_cache(maxsize=1)
def dictionary_words() -> frozenset[str]:
    from pocketsphinx import get_model_path

    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as handle:
        return frozenset(line.split(maxsplit=1)[0] for line in handle if line.strip())


def pocketsphinx_align(audio: np.ndarray, words: list[str], sample_rate: int = 16_000
                       ) -> tuple[list[Interval], list[Interval]] | None:
    """Word and phone intervals (seconds, ARPAbet) of `words` in `audio`, or None when a
    word is not in the dictionary or the alignment fails."""
    words = [word.lower() for word in words]
    if not words or any(word not in dictionary_words() for word in words):
        return None
    padding = np.zeros(int(PADDING_SECONDS * sample_rate), np.float32)
    padded = np.concatenate([padding, np.asarray(audio, np.float32), padding])
    padded = padded + DITHER_AMPLITUDE * np.random.default_rng(0).standard_normal(len(padded))
    pcm = (np.clip(padded, -1, 1) * 32767).astype("<i2").tobytes()
    decoder = _decoder()
    try:
        decoder.set_align_text(" ".join(words))
        # Two passes, as pocketsphinx 5 wants: the first finds the word path, the second
        # (after set_alignment) its phone and state segmentation.
        for second_pass in (False, True):
            if second_pass:
                decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
        alignment = decoder.get_alignment()
    except RuntimeError:  # no path through the audio; the decoder is left unusable
        _decoder.cache_clear()
        return None
    if alignment is None:
        return None

    def seconds(frame: int) -> float:
        return round(frame / FRAMES_PER_SECOND - PADDING_SECONDS, 4)

    word_intervals, phone_intervals = [], []
    for word in alignment:
        if word.name in NON_WORDS:
            continue
        name = word.name.split("(")[0]  # "the(2)": the dictionary's second pronunciation
        word_intervals.append((name, seconds(word.start), seconds(word.start + word.duration)))
        for phone in word:
            if phone.name in ARPABET:
                phone_intervals.append((phone.name, seconds(phone.start), seconds(phone.start + phone.duration)))
    if [word for word, _, _ in word_intervals] != words:
        return None
    return word_intervals, phone_intervals
