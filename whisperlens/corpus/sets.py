"""The corpus's sets: what each clip should contain (its plan), before any audio exists.

Every clip draws from its own `random.Random` seeded by (corpus seed, set, index), so a
clip's text, voice, rate, onset and level do not depend on which other clips are built,
in which shard, or in which order.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from ..errors import WhisperLensError
from .pairs import EN_ES_PAIRS, MINIMAL_PAIRS
from .sentences import SENTENCES
from .text import english_sentence

# (engine, voice, weight): natural-sounding voices first; espeak-ng is intelligible but
# robotic, so it gets a small share.
ENGLISH_VOICES = (
    ("flite", "kal16", 0.15),
    ("flite", "slt", 0.17),
    ("flite", "awb", 0.15),
    ("flite", "rms", 0.15),
    ("festival", "kal", 0.08),
    ("festival", "ked", 0.08),
    ("festival", "slt_hts", 0.12),
    ("espeak", "en-us", 0.07),
    ("espeak", "en", 0.03),
)
NATURAL_ENGLISH_VOICES = tuple(entry for entry in ENGLISH_VOICES if entry[0] != "espeak")
FIXED_RATE_VOICES = {("festival", "slt_hts")}  # HTS ignores festival's Duration_Stretch
MULTILINGUAL_VOICES = {"es": "es", "fr": "fr", "de": "de"}
NONSPEECH_KINDS = ("silence", "white_noise", "pink_noise", "brown_noise", "tone", "chord", "arpeggio", "clicks")
NONSPEECH_PER_KIND = 30

SET_NAMES = ("english", "multilingual", "minimal_pairs", "en_es_pairs", "nonspeech")


@dataclass
class ClipSpec:
    id: str
    set: str
    engine: str
    voice: str
    language: str | None
    text: str
    seed: int
    rate: float = 1.0
    onset: float = 0.0  # seconds of lead-in before the first word
    peak: float = 0.5  # peak amplitude of the finished clip
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def clip_random(seed: int, set_name: str, index: int) -> random.Random:
    return random.Random(f"whisperlens-corpus:{seed}:{set_name}:{index}")


def _speech_spec(rng: random.Random, clip_id: str, set_name: str, engine: str, voice: str,
                 language: str, text: str, meta: dict | None = None) -> ClipSpec:
    rate = 1.0 if (engine, voice) in FIXED_RATE_VOICES else round(rng.uniform(0.9, 1.15), 2)
    return ClipSpec(
        id=clip_id, set=set_name, engine=engine, voice=voice, language=language, text=text,
        seed=rng.getrandbits(31), rate=rate, onset=round(rng.uniform(0.0, 0.5), 3),
        peak=round(rng.uniform(0.3, 0.9), 3), meta=meta or {},
    )


def _pick_voice(rng: random.Random, voices=ENGLISH_VOICES) -> tuple[str, str]:
    engine, voice, _ = rng.choices(voices, weights=[weight for *_, weight in voices])[0]
    return engine, voice


def plan_english(seed: int, count: int) -> list[ClipSpec]:
    specs = []
    for index in range(count):
        rng = clip_random(seed, "english", index)
        engine, voice = _pick_voice(rng)
        specs.append(_speech_spec(rng, f"english-{index:06d}", "english", engine, voice, "en", english_sentence(rng)))
    return specs


def _evenly_chosen(count: int, available: int) -> list[int]:
    """`count` indices spread over range(available), so a small build still spans the list."""
    count = min(count, available)
    return sorted({index * available // count for index in range(count)})


def plan_multilingual(seed: int, count: int) -> list[ClipSpec]:
    items = [(language, sentence) for language in MULTILINGUAL_VOICES for sentence in SENTENCES[language]]
    # Interleave languages so that a small build has all three.
    items.sort(key=lambda item: (SENTENCES[item[0]].index(item[1]), item[0]))
    specs = []
    for index in range(min(count, len(items))):
        language, sentence = items[index]
        rng = clip_random(seed, "multilingual", index)
        specs.append(_speech_spec(rng, f"multilingual-{index:04d}", "multilingual", "espeak",
                                  MULTILINGUAL_VOICES[language], language, sentence))
    return specs


def plan_minimal_pairs(seed: int, count: int) -> list[ClipSpec]:
    specs = []
    for pair_index in _evenly_chosen(max(1, count // 2), len(MINIMAL_PAIRS)):
        word_a, word_b, phone_a, phone_b, position = MINIMAL_PAIRS[pair_index]
        pair_rng = clip_random(seed, "minimal_pairs", pair_index)
        engine, voice = _pick_voice(pair_rng)  # both words in one voice: only the contrast differs
        for member, (word, partner) in enumerate(((word_a, word_b), (word_b, word_a))):
            rng = clip_random(seed, f"minimal_pairs-{member}", pair_index)
            meta = {"pair_id": pair_index, "member": member, "partner": partner,
                    "contrast": f"{phone_a}-{phone_b}", "position": position,
                    "contrast_phone": (phone_a, phone_b)[member]}
            spec = _speech_spec(rng, f"minimal_pairs-{pair_index:04d}-{member}", "minimal_pairs",
                                engine, voice, "en", word, meta)
            spec.rate = 1.0 if (engine, voice) in FIXED_RATE_VOICES else round(pair_rng.uniform(0.9, 1.15), 2)
            specs.append(spec)
    return specs


def plan_en_es_pairs(seed: int, count: int) -> list[ClipSpec]:
    specs = []
    for pair_index in _evenly_chosen(max(1, count // 2), len(EN_ES_PAIRS)):
        english, spanish, cognate = EN_ES_PAIRS[pair_index]
        pair_rng = clip_random(seed, "en_es_pairs", pair_index)
        english_voice = _pick_voice(pair_rng, NATURAL_ENGLISH_VOICES)
        members = ((english, spanish, "en", english_voice), (spanish, english, "es", ("espeak", "es")))
        for member, (word, partner, language, (engine, voice)) in enumerate(members):
            rng = clip_random(seed, f"en_es_pairs-{member}", pair_index)
            meta = {"pair_id": pair_index, "member": member, "partner": partner, "cognate": cognate}
            specs.append(_speech_spec(rng, f"en_es_pairs-{pair_index:04d}-{language}", "en_es_pairs",
                                      engine, voice, language, word, meta))
    return specs


def plan_nonspeech(seed: int, count: int) -> list[ClipSpec]:
    available = len(NONSPEECH_KINDS) * NONSPEECH_PER_KIND
    specs = []
    for index in range(min(count, available)):  # kinds cycle, so any prefix has them all
        kind = NONSPEECH_KINDS[index % len(NONSPEECH_KINDS)]
        rng = clip_random(seed, "nonspeech", index)
        specs.append(ClipSpec(id=f"nonspeech-{index:04d}", set="nonspeech", engine="synthetic", voice=kind,
                              language=None, text="", seed=rng.getrandbits(31),
                              peak=round(rng.uniform(0.1, 0.8), 3), meta={"kind": kind}))
    return specs


PLANNERS = {
    "english": plan_english,
    "multilingual": plan_multilingual,
    "minimal_pairs": plan_minimal_pairs,
    "en_es_pairs": plan_en_es_pairs,
    "nonspeech": plan_nonspeech,
}


def plan_set(set_name: str, seed: int, count: int) -> list[ClipSpec]:
    """The clips of one set: `count` of them, or the set's whole list if that is shorter."""
    if set_name not in PLANNERS:
        raise WhisperLensError(f"unknown set {set_name!r}; choose from {', '.join(SET_NAMES)}")
    return PLANNERS[set_name](seed, count)
