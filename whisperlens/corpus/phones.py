"""ARPAbet, and the mapping of each engine's phone symbols onto it.

flite and festival use CMU's lower-case ARPAbet variant; espeak-ng reports IPA. Phones are
ARPAbet without stress digits. For Spanish, French and German the nearest English phone is
used (the IPA is kept beside it), so `frame_phones` speaks one alphabet across sets.
"""

from __future__ import annotations

from ..errors import WhisperLensError

Interval = tuple[str, float, float]  # (label, start seconds, end seconds)

ARPABET = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH"
).split()

CMU_SILENCES = {"pau", "h#", "sil", "brth", "#", "ssil"}
CMU_ALIASES = {"ax": "AH", "axr": "ER", "ix": "IH", "el": "L", "em": "M", "en": "N", "dx": "D", "nx": "N"}

# One IPA symbol as espeak-ng reports it -> one or more ARPAbet phones. Vowel length and
# rhoticity marks are folded; a diphthong or syllabic consonant espeak-ng treats as one
# symbol may become two phones, which share its interval evenly.
IPA_TO_ARPABET = {
    # English vowels
    "ɑ": "AA", "ɑː": "AA", "a": "AA", "aː": "AA", "æ": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH",
    "ɔ": "AO", "ɔː": "AO", "ɒ": "AA", "aʊ": "AW", "aɪ": "AY", "ɛ": "EH", "e": "EY", "eː": "EY",
    "ɜː": "ER", "ɜ": "ER", "ɚ": "ER", "eɪ": "EY", "ɪ": "IH", "ᵻ": "IH", "i": "IY", "iː": "IY",
    "oʊ": "OW", "o": "OW", "oː": "OW", "əʊ": "OW", "ɔɪ": "OY", "ʊ": "UH", "u": "UW", "uː": "UW",
    "əl": "AH L", "ɑːɹ": "AA R", "ɑɹ": "AA R", "ɔːɹ": "AO R", "ɔɹ": "AO R", "oːɹ": "AO R",
    "ɛɹ": "EH R", "ɛə": "EH R", "ɪɹ": "IH R", "ɪə": "IH R", "iə": "IY AH", "ʊɹ": "UH R",
    "ʊə": "UH R", "aɪɚ": "AY ER", "aɪə": "AY ER", "aʊɚ": "AW ER", "aʊə": "AW ER", "ɜːɹ": "ER",
    "əɹ": "ER", "ɚː": "ER",
    # English consonants
    "b": "B", "d": "D", "f": "F", "ɡ": "G", "g": "G", "h": "HH", "k": "K", "l": "L", "m": "M",
    "n": "N", "ŋ": "NG", "p": "P", "s": "S", "t": "T", "v": "V", "w": "W", "z": "Z", "ʃ": "SH",
    "ʒ": "ZH", "θ": "TH", "ð": "DH", "tʃ": "CH", "dʒ": "JH", "ɹ": "R", "j": "Y", "ɾ": "D",
    "ʔ": "T", "n̩": "N", "l̩": "L", "m̩": "M", "ɬ": "L", "ʍ": "W", "x": "HH", "ç": "HH",
    # Spanish, French and German: the nearest English phone
    "r": "R", "ɾr": "R", "β": "B", "ɣ": "G", "ʝ": "Y", "ɲ": "N Y", "ʎ": "L Y", "ts": "T S",
    "pf": "P F", "ʁ": "R", "χ": "HH", "ɥ": "W", "y": "UW", "yː": "UW", "ʏ": "UH", "ø": "ER",
    "øː": "ER", "œ": "ER", "œ̃": "ER N", "ɑ̃": "AA N", "ɔ̃": "AO N", "ɛ̃": "EH N", "ɛː": "EH",
    "ɔø": "OY", "aɪ̯": "AY", "aʊ̯": "AW", "ɔʏ": "OY", "ɐ̯": "ER", "ɔy": "OY", "ja": "Y AA",
    "je": "Y EY", "jo": "Y OW", "ju": "Y UW", "we": "W EY", "wa": "W AA", "ɪ̯": "Y", "ʊ̯": "W",
}


def cmu_to_arpabet(symbol: str) -> str | None:
    """A flite/festival phone symbol in ARPAbet; None for silence."""
    symbol = symbol.lower()
    if symbol in CMU_SILENCES:
        return None
    phone = CMU_ALIASES.get(symbol, symbol.upper().rstrip("012"))
    if phone not in ARPABET:
        raise WhisperLensError(f"unknown engine phone {symbol!r}")
    return phone


def ipa_to_arpabet(symbol: str, voice: str = "en-us") -> list[str]:
    """An espeak-ng IPA phone as one or more ARPAbet phones."""
    if symbol in IPA_TO_ARPABET:
        return IPA_TO_ARPABET[symbol].split()
    stripped = symbol.replace("ː", "").replace("ˑ", "").replace("̯", "").replace("-", "")
    if stripped in IPA_TO_ARPABET:
        return IPA_TO_ARPABET[stripped].split()
    # A cluster espeak-ng reports as one event (e.g. "ks"): map it symbol by symbol.
    pieces = [IPA_TO_ARPABET.get(char) for char in stripped]
    if stripped and all(pieces):
        return " ".join(pieces).split()
    raise WhisperLensError(f"no ARPAbet mapping for espeak-ng phone {symbol!r} (voice {voice})")


def spread(phones: list[str], start: float, end: float) -> list[Interval]:
    """Share one interval evenly among the phones one engine symbol became."""
    step = (end - start) / len(phones)
    return [(phone, start + i * step, start + (i + 1) * step) for i, phone in enumerate(phones)]

