"""Batched greedy decoding for the binary metric, as `whisper.decode` does it with temperature 0,
without timestamps and a token limit, but cheaper for many short patched runs.

`whisper.decode` is what the straightforward way calls (tests/test_patching.py checks the two
agree); it is hand-written again here for three savings it cannot make:
- the cross-attention keys and values may come from the teacher-forced pass that scored the same
  encoder output (the logit difference's), instead of being projected again from 1500 positions;
- a row that has written its end-of-text token leaves the batch (openai keeps decoding it until
  every row has finished);
- language detection reads the same cached keys.
The options, initial tokens and logit filters are openai's own `DecodingTask`'s.
"""

from __future__ import annotations

import torch
import whisper
from torch import Tensor
from whisper.decoding import DecodingTask

MAX_TOKENS = 16  # a one-word clip takes 2-5 tokens; the cap ends a loop early


def decoding_task(model, language: str | None, max_tokens: int = MAX_TOKENS) -> DecodingTask:
    """openai's task for greedy decoding without timestamps (its tokenizer, initial tokens, filters)."""
    options = whisper.DecodingOptions(language=language, without_timestamps=True, fp16=False, temperature=0.0,
                                      sample_len=max_tokens)
    return DecodingTask(model, options)


def cross_attention_modules(model) -> list:
    """The decoder's cross-attention key and value projections, whose outputs the kv-cache keeps."""
    return [linear for block in model.decoder.blocks for linear in (block.cross_attn.key, block.cross_attn.value)]


def greedy_texts(model, features: Tensor, language: str | None, cross_kv: dict | None = None,
                 max_tokens: int = MAX_TOKENS) -> list[str]:
    """The greedy transcript of each row of `features` (encoder outputs), as `whisper.decode` gives
    it. `language` None: detect it per row (multilingual models). `cross_kv`: the cross-attention
    projections' outputs for these features ({module: (rows, positions, d)}), if already computed."""
    task = decoding_task(model, language, max_tokens)
    tokenizer, eot = task.tokenizer, task.tokenizer.eot
    n = features.shape[0]
    tokens = torch.tensor([task.initial_tokens], device=features.device).repeat(n, 1)
    if cross_kv is None:  # what the cross-attention's first call would project, done here once for both passes
        cross_kv = {linear: linear(features) for linear in cross_attention_modules(model)}
    # The first key of a kv-cache must be a self-attention one: the decoder reads its offset from it.
    seeded = {model.decoder.blocks[0].attn.key: features.new_zeros(n, 0, model.dims.n_text_state), **cross_kv}
    if language is None and model.is_multilingual:  # openai's detect_language, with the cached cross-attention
        logits = model.decoder(tokens[:, :1], features, kv_cache=seeded)[:, 0]
        allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
        allowed[list(tokenizer.all_language_tokens)] = True
        tokens[:, task.sot_index + 1] = logits.masked_fill(~allowed, float("-inf")).argmax(-1)
    cache, handles = model.install_kv_cache_hooks(seeded)
    active = torch.arange(n, device=features.device)  # the rows still decoding
    finished: dict[int, Tensor] = {}
    try:
        fed = 0
        for _ in range(task.sample_len):
            logits = model.decoder(tokens[:, fed:], features[active], kv_cache=cache)[:, -1]
            fed = tokens.shape[1]
            for logit_filter in task.logit_filters:
                logit_filter.apply(logits, tokens)
            tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
            done = tokens[:, -1] == eot
            for row in torch.nonzero(done).flatten().tolist():
                finished[int(active[row])] = tokens[row, task.sample_begin:-1]
            if done.all():
                break
            if done.any():
                keep = ~done
                active, tokens = active[keep], tokens[keep]
                for module, value in cache.items():
                    cache[module] = value[keep]
        for row, index in enumerate(active.tolist()):
            finished.setdefault(index, tokens[row, task.sample_begin:])
    finally:
        for handle in handles:
            handle.remove()
    return [tokenizer.decode(finished[i].tolist()).strip() for i in range(n)]
