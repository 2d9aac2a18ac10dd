"""espeak-ng through ctypes on libespeak-ng: audio plus its phoneme events.

The command line cannot give timings (`--pho` needs MBROLA), so the library is driven
directly in synchronous mode with phoneme events in IPA. espeak-ng reports one word event
for some function-word pairs ("of the"), and every phoneme of the pair carries the first
word's text position; such groups are split by each word's own phoneme count.
"""

from __future__ import annotations

import ctypes
import re

import numpy as np

from ...errors import WhisperLensError
from ..phones import ipa_to_arpabet, spread
from . import Engine, Request, Synthesis, find_shared_library, resample

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_PHONEME = 0, 1, 7
POSITION_CHARACTER = 1
CHARS_UTF8 = 1
PARAMETER_RATE = 1
DEFAULT_WORDS_PER_MINUTE = 175
PHONEME_MODE_IPA = 0x02
STRESS_MARKS = re.compile("[ˈˌ]")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class EspeakEngine(Engine):
    name = "espeak"
    debian_package = "espeak-ng"
    voices = ("en-us", "en", "es", "fr", "de")
    soname = "libespeak-ng.so.1"

    def __init__(self) -> None:
        self._lib = None
        self._sample_rate = 0
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, str]] = []
        self._callback = _Callback(self._on_synth)  # kept alive: the library holds a pointer to it

    def is_available(self) -> bool:
        return find_shared_library(self.soname) is not None

    def _library(self):
        if self._lib is None:
            self.check_available()
            lib = ctypes.CDLL(find_shared_library(self.soname))
            lib.espeak_Info.restype = ctypes.c_char_p
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
            options = INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA | INITIALIZE_DONT_EXIT
            self._sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, options)
            if self._sample_rate <= 0:
                raise WhisperLensError("espeak-ng failed to initialise; reinstall the Debian package espeak-ng")
            lib.espeak_SetSynthCallback(self._callback)
            self._lib = lib
        return self._lib

    def version(self) -> str:
        return self._library().espeak_Info(None).decode()

    def _on_synth(self, samples, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(n_samples,)).copy())
        index = 0
        while events[index].type != EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type in (EVENT_WORD, EVENT_PHONEME):
                symbol = event.id.string.decode("utf-8", "replace") if event.type == EVENT_PHONEME else ""
                self._events.append((event.type, event.text_position, event.sample, symbol))
            index += 1
        return 0

    def _set_voice(self, voice: str) -> None:
        if self._library().espeak_SetVoiceByName(voice.encode()) != 0:
            raise WhisperLensError(f"espeak-ng has no voice {voice!r}")

    def word_phonemes(self, word: str, voice: str) -> list[str]:
        """The IPA phonemes espeak-ng gives `word` said on its own."""
        lib = self._library()
        self._set_voice(voice)
        encoded = ctypes.create_string_buffer(word.encode())
        pointer = ctypes.c_void_p(ctypes.addressof(encoded))
        separator = ord("_") << 8
        ipa = lib.espeak_TextToPhonemes(ctypes.byref(pointer), CHARS_UTF8, PHONEME_MODE_IPA | separator)
        ipa = STRESS_MARKS.sub("", (ipa or b"").decode())
        return [p for p in re.split(r"[_\s]+", ipa) if p]

    def synthesize_batch(self, requests: list[Request]) -> list[Synthesis]:
        return [self.synthesize(request) for request in requests]

    def synthesize(self, request: Request) -> Synthesis:
        lib = self._library()
        self._set_voice(request.voice)
        lib.espeak_SetParameter(PARAMETER_RATE, round(DEFAULT_WORDS_PER_MINUTE / request.rate), 0)
        self._chunks, self._events = [], []
        text = request.text.encode()
        status = lib.espeak_Synth(text, len(text) + 1, 0, POSITION_CHARACTER, 0, CHARS_UTF8, None, None)
        if status != 0:
            raise WhisperLensError(f"espeak-ng failed on {request.text!r} (status {status})")
        audio = np.concatenate(self._chunks).astype(np.float32) / 32768.0 if self._chunks else np.zeros(0, np.float32)
        native = self._phone_intervals(len(audio))
        words = request.text.split()
        groups = self._group_by_word(native, request.text)
        word_intervals, phones, native_kept = [], [], []
        word_index = 0
        for group_words, group_phones in groups:
            for word, word_phones in zip(group_words, self._split_group(group_words, group_phones, request.voice)):
                arpabet = [piece for ipa, start, end in word_phones
                           for piece in spread(ipa_to_arpabet(ipa, request.voice), start, end)]
                if not word_phones:
                    raise WhisperLensError(f"espeak-ng gave no phonemes for {word!r} in {request.text!r}")
                word_intervals.append((words[word_index], word_phones[0][1], word_phones[-1][2]))
                phones.extend(arpabet)
                native_kept.extend(word_phones)
                word_index += 1
        if word_index != len(words):
            raise WhisperLensError(f"espeak-ng read {word_index} words in {request.text!r}, expected {len(words)}")
        return Synthesis(resample(audio, self._sample_rate), word_intervals, phones, native_kept)

    def _phone_intervals(self, n_samples: int) -> list[tuple[str, float, float, int]]:
        """(ipa, start, end, text_position) per phoneme event; an event with an empty symbol
        marks a pause, which ends the phone before it and is not itself a phone."""
        phoneme_events = [(pos, sample, symbol) for kind, pos, sample, symbol in self._events if kind == EVENT_PHONEME]
        intervals = []
        for index, (position, sample, symbol) in enumerate(phoneme_events):
            if not symbol:
                continue
            end = phoneme_events[index + 1][1] if index + 1 < len(phoneme_events) else n_samples
            if end > sample:
                intervals.append((symbol, sample / self._sample_rate, end / self._sample_rate, position))
        return intervals

    @staticmethod
    def _group_by_word(native, text: str):
        """Group phones by the text position espeak-ng reports, and give each group the text
        words that start between it and the next group."""
        starts, position = [], 0
        for word in text.split():
            position = text.index(word, position)
            starts.append(position + 1)  # espeak-ng counts characters from 1
            position += len(word)
        group_positions = sorted({phone[3] for phone in native})
        groups = []
        for index, group_position in enumerate(group_positions):
            upper = group_positions[index + 1] if index + 1 < len(group_positions) else len(text) + 2
            members = [i for i, start in enumerate(starts) if group_position <= start < upper]
            if index == 0:  # anything espeak-ng reported before its first phone belongs here
                members = [i for i, start in enumerate(starts) if start < upper]
            phones = [(ipa, start, end) for ipa, start, end, pos in native if pos == group_position]
            groups.append(([text.split()[i] for i in members], phones))
        return [(group_words, phones) for group_words, phones in groups if group_words]

    def _split_group(self, group_words: list[str], phones: list, voice: str) -> list[list]:
        if len(group_words) == 1:
            return [phones]
        counts = [max(1, len(self.word_phonemes(word.strip(".,;:!?"), voice))) for word in group_words]
        if sum(counts) != len(phones):  # context changed a pronunciation: share out in proportion
            scaled = np.maximum(1, np.round(np.array(counts) * len(phones) / sum(counts)).astype(int))
            scaled[-1] = len(phones) - scaled[:-1].sum()
            if scaled[-1] < 1:
                raise WhisperLensError(f"espeak-ng merged {group_words} into too few phones to split")
            counts = scaled.tolist()
        pieces, offset = [], 0
        for count in counts:
            pieces.append(phones[offset: offset + count])
            offset += count
        return pieces


ENGINE = EspeakEngine()
