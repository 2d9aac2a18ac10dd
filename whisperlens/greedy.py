"""Batched greedy decoding from cached cross-attention keys and values: the same tokens as
openai-whisper's `decode` at temperature 0 (openai's own initial tokens and logit filters, with
or without timestamps, language given or detected), with three savings that matter when a study
decodes hundreds of edited, masked or patched encoder outputs (locality's sweeps and word
removal, patching's binary metric):

- a finished row leaves the batch: openai's loop runs every row until the last one ends, so one
  clip in a 48-token repetition loop (common under a narrow band) makes the whole batch run 48
  steps;
- the cross-attention keys and values (`cross_kv`: one linear map of all 1500 positions per
  decoder layer, the largest single cost of a short decode) are computed once per encoder output
  and shared with the teacher-forced scoring; for word removal they are edited directly, since
  replacing encoder positions replaces the same rows of the keys and values;
- language detection reads the same cached keys.

Written here rather than called through `whisper.decode` because openai's decoder has no hook for
any of these; it reuses openai's `DecodingTask` for the initial tokens, the logit filters and the
token limit, so the rules stay openai's. tests/test_locality.py and tests/test_patching.py check
the transcripts against `whisper.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .transcripts import decoding_options


@dataclass
class Decoded:
    """One row's result: what the study reads of openai's `DecodingResult`."""

    text: str
    tokens: list[int]


DECODE_ROWS = 64  # rows decoded together: a step costs about as much for 1 row as for 64 on a CPU

CrossKV = list[tuple[torch.Tensor, torch.Tensor]]  # per decoder layer: keys and values, each (batch, 1500, d)


def kv_of_modules(model, outputs: dict) -> CrossKV:
    """CrossKV from a {key/value linear module: its output} map (what a hooked pass captured)."""
    return [(outputs[block.cross_attn.key], outputs[block.cross_attn.value]) for block in model.decoder.blocks]


def cross_kv(model, features: torch.Tensor) -> CrossKV:
    """The decoder's cross-attention keys and values of encoder outputs (batch, 1500, d)."""
    with torch.no_grad():
        return [(block.cross_attn.key(features), block.cross_attn.value(features)) for block in model.decoder.blocks]


def select_rows(kv: CrossKV, rows) -> CrossKV:
    return [(keys[rows], values[rows]) for keys, values in kv]


def replace_kv_positions(kv: CrossKV, padding_kv: CrossKV, row: int, positions: Sequence[int]) -> CrossKV:
    """One row of `kv` with `positions` taken from the padding-only audio's keys and values: the keys
    and values of the encoder output edited by `removal.replace_positions` (they are position-wise
    linear maps of it)."""
    positions = torch.as_tensor(list(positions), dtype=torch.long)
    edited = []
    for (keys, values), (pad_keys, pad_values) in zip(kv, padding_kv, strict=True):
        keys, values = keys[row: row + 1].clone(), values[row: row + 1].clone()
        keys[:, positions], values[:, positions] = pad_keys[:, positions], pad_values[:, positions]
        edited.append((keys, values))
    return edited


def concat_kv(parts: Sequence[CrossKV]) -> CrossKV:
    return [(torch.cat([p[i][0] for p in parts]), torch.cat([p[i][1] for p in parts])) for i in range(len(parts[0]))]


def decoder_cache(model, kv: CrossKV) -> dict:
    """A kv-cache holding the cross-attention keys and values. The self-attention entries come
    first, empty: the decoder reads its position offset from the cache's first entry."""
    n_batch, dtype = kv[0][0].shape[0], kv[0][0].dtype
    empty = torch.zeros(n_batch, 0, model.dims.n_text_state, dtype=dtype, device=kv[0][0].device)
    cache = {}
    for block in model.decoder.blocks:
        cache[block.attn.key], cache[block.attn.value] = empty, empty
    for block, (keys, values) in zip(model.decoder.blocks, kv, strict=True):
        cache[block.cross_attn.key], cache[block.cross_attn.value] = keys, values
    return cache


_TASKS: dict = {}


def decoding_task(model, max_tokens: int, timestamps: bool = True, language: str | None = "en"):
    """openai's DecodingTask for greedy decoding (its tokenizer takes ~0.5 s to build: kept)."""
    import dataclasses

    import whisper.decoding

    key = (id(model), max_tokens, timestamps, language)
    if key not in _TASKS:
        options = dataclasses.replace(decoding_options(max_tokens, timestamps=timestamps), language=language)
        _TASKS[key] = whisper.decoding.DecodingTask(model, options)
    return _TASKS[key]


def detect_languages(model, task, tokens: torch.Tensor, cache: dict, dtype_probe: torch.Tensor) -> None:
    """openai's `detect_language` on the cached keys: writes each row's most likely language token
    after start-of-transcript in `tokens`."""
    logits = model.decoder(tokens[:, :1], dtype_probe, kv_cache=cache)[:, 0]
    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    allowed[list(task.tokenizer.all_language_tokens)] = True
    tokens[:, task.sot_index + 1] = logits.masked_fill(~allowed, float("-inf")).argmax(-1)


def greedy_decode(model, kv: CrossKV, max_tokens: int, timestamps: bool = True,
                  language: str | None = "en") -> list[Decoded]:
    """Each row's greedy transcript given its cross-attention keys and values (`cross_kv`).
    `language` None: a multilingual model detects it per row, as `whisper.decode` does."""
    task = decoding_task(model, max_tokens, timestamps, language)
    tokenizer, eot = task.tokenizer, task.tokenizer.eot
    n_batch = kv[0][0].shape[0]
    tokens = torch.tensor([task.initial_tokens], device=kv[0][0].device).repeat(n_batch, 1)
    rows = np.arange(n_batch)  # the original row of each row still decoding
    finished: dict[int, torch.Tensor] = {}
    dtype_probe = kv[0][0][:, :1]  # the decoder reads only the dtype of its audio input once the cache holds the keys
    if language is None and model.is_multilingual:
        with torch.no_grad():
            detect_languages(model, task, tokens, decoder_cache(model, kv), dtype_probe)
    cache, hooks = model.install_kv_cache_hooks(decoder_cache(model, kv))
    try:
        with torch.no_grad():
            for step in range(task.sample_len):
                logits = model.decoder(tokens if step == 0 else tokens[:, -1:], dtype_probe, kv_cache=cache)[:, -1]
                for logit_filter in task.logit_filters:
                    logit_filter.apply(logits, tokens)
                tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=-1)
                done = (tokens[:, -1] == eot).cpu().numpy()
                if done.any():
                    for index in np.flatnonzero(done):
                        finished[int(rows[index])] = tokens[index, task.sample_begin: -1]
                    keep = torch.as_tensor(np.flatnonzero(~done), device=tokens.device)
                    rows, tokens, dtype_probe = rows[~done], tokens[keep], dtype_probe[keep]
                    for module in cache:
                        cache[module] = cache[module][keep]
                    if not len(rows):
                        break
    finally:
        for hook in hooks:
            hook.remove()
    for index, row in enumerate(rows):  # rows that reached the token limit
        finished[int(row)] = tokens[index, task.sample_begin:]
    results = []
    for row in range(n_batch):
        sampled = finished[row].tolist()
        results.append(Decoded(tokenizer.decode(sampled).strip(), sampled))
    return results
