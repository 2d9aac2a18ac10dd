"""The seeds' one-clip demonstrations on the bundled example: its transcript under every band
k, and its transcript with spans of the encoder output replaced by the padding-only audio's."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...audio import log_mel
from ...greedy import concat_kv, cross_kv, greedy_decode, replace_kv_positions
from ...interventions import Patch
from ...transcripts import decode, padding_features, word_timings
from .encode import block_inputs
from .removal import OUTPUT_HOOK

EXAMPLE_MAX_TOKENS = 96  # the example is 6.5 s, about 30 tokens: room for a loop to show


def example_transcripts(model, audio, half_widths: Sequence[int | None]) -> list[dict]:
    """The example's greedy transcript with the ±k band on every head, per k: one clean pass, each
    band from its block inputs as in the sweep, every k decoded together."""
    from .sweep import global_masks, masked_output

    inputs, clean = block_inputs(model, log_mel(audio, model.dims.n_mels)[None])
    masks = global_masks(half_widths)
    kv = concat_kv([cross_kv(model, masked_output(model, inputs, clean, mask)) for mask in masks])
    return [{"half_width": mask.half_width, "text": result.text}
            for mask, result in zip(masks, greedy_decode(model, kv, EXAMPLE_MAX_TOKENS), strict=True)]


def remove_span(model, audio, start: int, stop: int, padding: torch.Tensor | None = None,
                max_tokens: int = EXAMPLE_MAX_TOKENS) -> str:
    """The transcript with encoder positions start..stop-1 replaced by the padding-only audio's, by the
    `Patch` intervention on a full pass."""
    padding = padding_features(model) if padding is None else padding
    patch = Patch(OUTPUT_HOOK, source={OUTPUT_HOOK: padding}, positions=range(start, stop))
    with model.intervene(patch):
        return decode(model, log_mel(audio, model.dims.n_mels)[None], max_tokens, timestamps=True)[0].text.strip()


def word_spans(model, audio) -> list[dict]:
    """Whisper's word timestamps (openai's transcribe) as encoder positions."""
    from .removal import seconds_to_frames

    language = None if model.is_multilingual else "en"
    result = model.transcribe(audio, language=language, word_timestamps=True, fp16=False, temperature=0.0)
    n_frames = 1500
    return [{**word, "frames": list(seconds_to_frames(word["start"], word["end"], n_frames))}
            for word in word_timings(result, digits=None)]


def seed_edits(model, audio, spans: list[dict]) -> list[dict]:
    """The seeds' two edits (frames 0-50, and 150-175), and the spans Whisper's timestamps give for
    the first two words and for 'hot questions' (the words the seeds' edits removed from their
    clip, which is slower than ours), each with its transcript."""
    edits = [("frames 0-50 (seed: removes the first two words)", 0, 50),
             ("frames 150-175 (seed's middle span, 3.0-3.5 s)", 150, 175)]
    words = [span["word"].lower().strip(".,") for span in spans]
    if len(spans) >= 2:
        edits.append((f"Whisper's timestamps for the first two words, '{' '.join(words[:2])}'", spans[0]["frames"][0],
                      spans[1]["frames"][1]))
    for i in range(len(words) - 1):
        if words[i: i + 2] == ["hot", "questions"]:
            edits.append(("Whisper's timestamps for 'hot questions'", spans[i]["frames"][0], spans[i + 1]["frames"][1]))
            break
    with torch.no_grad():
        clean = cross_kv(model, model.run(log_mel(audio, model.dims.n_mels)[None]))
    padding = cross_kv(model, padding_features(model))
    kv = concat_kv([replace_kv_positions(clean, padding, 0, range(start, stop)) for _, start, stop in edits])
    return [{"edit": name, "start": start, "stop": stop, "text": result.text}
            for (name, start, stop), result in zip(edits, greedy_decode(model, kv, EXAMPLE_MAX_TOKENS), strict=True)]
