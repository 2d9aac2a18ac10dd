"""flite through ctypes on libflite: audio plus the Segment relation's end times.

The flite binary can print segment end times (`-psdur`) but not which word each segment
belongs to, and starting it once per clip costs more than the synthesis; the library gives
both in-process. flite's clustergen voices (slt, awb, rms) draw excitation noise from the C
library's rand(), so srand(seed) before each utterance makes a clip independent of what the
process synthesized before.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from ...errors import WhisperLensError
from . import Engine, Request, Synthesis, find_shared_library, resample, synthesis_from_segments

LANGUAGE_LIBRARIES = ("libflite_usenglish.so.1", "libflite_cmulex.so.1")


class _Wave(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


class FliteEngine(Engine):
    name = "flite"
    debian_package = "flite"
    voices = ("kal16", "slt", "awb", "rms")
    soname = "libflite.so.1"

    def __init__(self) -> None:
        self._lib = None
        self._libc = None
        self._voices: dict[str, int] = {}

    def is_available(self) -> bool:
        return find_shared_library(self.soname) is not None

    def _library(self):
        if self._lib is None:
            self.check_available()
            # RTLD_GLOBAL: the voice libraries resolve flite's symbols through the global scope.
            lib = ctypes.CDLL(self.soname, mode=ctypes.RTLD_GLOBAL)
            for dependency in LANGUAGE_LIBRARIES:
                ctypes.CDLL(dependency, mode=ctypes.RTLD_GLOBAL)
            lib.flite_init()
            signatures = {
                "flite_synth_text": ([ctypes.c_char_p, ctypes.c_void_p], ctypes.c_void_p),
                "utt_wave": ([ctypes.c_void_p], ctypes.POINTER(_Wave)),
                "utt_relation": ([ctypes.c_void_p, ctypes.c_char_p], ctypes.c_void_p),
                "relation_head": ([ctypes.c_void_p], ctypes.c_void_p),
                "item_next": ([ctypes.c_void_p], ctypes.c_void_p),
                "ffeature_string": ([ctypes.c_void_p, ctypes.c_char_p], ctypes.c_char_p),
                "ffeature_float": ([ctypes.c_void_p, ctypes.c_char_p], ctypes.c_float),
                "delete_utterance": ([ctypes.c_void_p], None),
                "feat_set_float": ([ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float], None),
                "path_to_item": ([ctypes.c_void_p, ctypes.c_char_p], ctypes.c_void_p),
            }
            for function, (argtypes, restype) in signatures.items():
                getattr(lib, function).argtypes = argtypes
                getattr(lib, function).restype = restype
            self._libc = ctypes.CDLL(ctypes.util.find_library("c"))
            self._lib = lib
        return self._lib

    def _voice(self, name: str) -> int:
        if name not in self._voices:
            self.check_voice(name)
            self._library()
            library = ctypes.CDLL(f"libflite_cmu_us_{name}.so.1")
            register = getattr(library, f"register_cmu_us_{name}")
            register.restype = ctypes.c_void_p
            self._voices[name] = register(None)
        return self._voices[name]

    def synthesize_batch(self, requests: list[Request]) -> list[Synthesis]:
        return [self.synthesize(request) for request in requests]

    def synthesize(self, request: Request) -> Synthesis:
        lib = self._library()
        voice = self._voice(request.voice)
        features = ctypes.cast(voice, ctypes.POINTER(ctypes.c_void_p))[1]  # cst_voice.features
        lib.feat_set_float(features, b"duration_stretch", request.rate)
        self._libc.srand(request.seed & 0x7FFFFFFF)
        utterance = lib.flite_synth_text(request.text.encode(), voice)
        if not utterance:
            raise WhisperLensError(f"flite failed on {request.text!r}")
        try:
            wave = lib.utt_wave(utterance).contents
            audio = np.ctypeslib.as_array(wave.samples, shape=(wave.num_samples,)).astype(np.float32) / 32768.0
            segments = []
            item = lib.relation_head(lib.utt_relation(utterance, b"Segment"))
            start = 0.0
            while item:
                name = lib.ffeature_string(item, b"name").decode()
                end = float(lib.ffeature_float(item, b"end"))
                # The word item's address tells two equal words in a row apart.
                word_key = lib.path_to_item(item, b"R:SylStructure.parent.parent")
                segments.append((name, start, end, word_key))
                start = end
                item = lib.item_next(item)
            sample_rate = wave.sample_rate
        finally:
            lib.delete_utterance(utterance)
        return synthesis_from_segments(resample(audio, sample_rate), segments, request.text, self.name)


ENGINE = FliteEngine()
