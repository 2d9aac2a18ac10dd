"""Core speed: HookedWhisper against plain openai-whisper, short-clip mode, and CTranslate2.

Usage: .venv/bin/python benchmarks/bench_core.py [--model tiny.en] [--repeats 5]
All timings are medians over --repeats runs, taken in one process on the same input
(the bundled example, about 7 s of speech), interleaving the contenders.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import whisper
from whisper.model import ModelDimensions, Whisper

import whisperlens
from whisperlens.audio import SAMPLE_RATE, load_audio, log_mel
from whisperlens.models.loading import (
    BUNDLED_MODELS,
    load_checkpoint,
    write_ct2_directory,
)
from whisperlens.studies.example import bundled_example


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    audio = load_audio(bundled_example())
    checkpoint = load_checkpoint(args.model)
    plain = Whisper(ModelDimensions(**checkpoint["dims"]))
    plain.load_state_dict(checkpoint["model_state_dict"])
    plain.eval()
    hooked = whisperlens.load_model(args.model)
    language = "en" if not hooked.is_multilingual else None

    def transcribe(model):
        return lambda: whisper.transcribe(model, audio, language=language, fp16=False, temperature=0.0)["text"]

    def transcribe_caching_encoder():
        with hooked.caching("encoder.*") as cache:
            text = whisper.transcribe(hooked, audio, language=language, fp16=False, temperature=0.0)["text"]
        return text, len(cache)

    transcribe(plain)()  # warm-up: first calls pay for allocations and numba compilation
    results = {"plain": [], "hooked": [], "cached": []}
    texts = {}
    for _ in range(args.repeats):
        for key, fn in (("plain", transcribe(plain)), ("hooked", transcribe(hooked)), ("cached", transcribe_caching_encoder)):
            seconds, texts[key] = timed(fn, 1)
            results[key].append(seconds)
    plain_s, hooked_s, cached_s = (statistics.median(results[k]) for k in ("plain", "hooked", "cached"))
    assert texts["plain"] == texts["hooked"] == texts["cached"][0], "transcripts differ"
    print(f"model {args.model}, {len(audio) / SAMPLE_RATE:.1f} s of audio, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats}")
    print(f"transcribe, plain openai-whisper:            {plain_s:7.3f} s")
    print(f"transcribe, HookedWhisper, no hooks:         {hooked_s:7.3f} s   ratio {hooked_s / plain_s:.3f} (goal <= 1.05)")
    print(f"transcribe, every encoder activation cached: {cached_s:7.3f} s   ratio {cached_s / plain_s:.3f} "
          f"({texts['cached'][1]} hooks)")

    clip = audio[: 2 * SAMPLE_RATE]
    exact_mel, short_mel = log_mel(clip)[None], log_mel(clip, short=True)[None]
    with torch.no_grad():
        exact_s, _ = timed(lambda: hooked.run(exact_mel), args.repeats)
        short_s, _ = timed(lambda: hooked.run(short_mel, short_audio=True), args.repeats)
    print(f"encoder forward, 2 s clip, exact 30 s mode:  {exact_s:7.3f} s")
    print(f"encoder forward, 2 s clip, short-clip mode:  {short_s:7.3f} s   speed-up {exact_s / short_s:.1f}x")

    try:
        import ctranslate2
    except ImportError:
        print("ctranslate2 not installed: skipping its timing (bash scripts/setup.sh --test installs it)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_ct2_directory(BUNDLED_MODELS[args.model], Path(tmp))
        ct2 = ctranslate2.models.Whisper(str(directory), device="cpu", compute_type="float32",
                                         intra_threads=torch.get_num_threads())
    tokenizer = whisper.tokenizer.get_tokenizer(hooked.is_multilingual, num_languages=hooked.num_languages, language="en")
    prompt = list(tokenizer.sot_sequence_including_notimestamps)

    def ct2_transcribe():
        mel = log_mel(audio)[None].numpy()
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))
        result = ct2.generate(features, [prompt], beam_size=1)
        return tokenizer.decode([t for t in result[0].sequences_ids[0] if t < tokenizer.eot])

    ct2_s, ct2_text = timed(ct2_transcribe, args.repeats)
    print(f"CTranslate2 float32, greedy, one window:     {ct2_s:7.3f} s   ratio to plain openai-whisper {ct2_s / plain_s:.3f}")
    print(f"  (CTranslate2 transcript: {ct2_text.strip()!r})")


if __name__ == "__main__":
    main()
