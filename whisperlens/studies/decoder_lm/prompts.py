"""The decoder without audio: prompts in the model's own start sequence, three kinds of "no
audio", and the next-token logits after a batch of prompts.

The start sequence is the tokenizer's, with `<|notimestamps|>` last: tiny.en's is
`<|startoftranscript|><|notimestamps|>` (English-only models have no language or task tokens),
base's `<|startoftranscript|><|en|><|transcribe|><|notimestamps|>`. Without `<|notimestamps|>`
the decoder expects a timestamp first, and timestamp tokens compete with the words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...audio import N_SAMPLES, log_mel
from ...errors import WhisperLensError
from ...interventions import Patch

# How the encoder output is replaced:
CONDITIONS = {
    "silence": "the encoder run on 30 s of silence (the seeds' padding-only input)",
    "zeros": "the encoder output replaced by zeros",
    "no_cross": "every decoder cross-attention output zeroed",
}


def check_conditions(conditions: Sequence[str]) -> None:
    unknown = [name for name in conditions if name not in CONDITIONS]
    if unknown or not conditions:
        raise WhisperLensError(f"unknown no-audio condition {unknown[0]!r}" if unknown else "no no-audio condition given"
                               + f"; choose from {', '.join(CONDITIONS)}")


def english_tokenizer(model):
    """openai-whisper's tokenizer for the model, set to English transcription on a multilingual model."""
    from ...models.loading import tokenizer_for

    return tokenizer_for(model, language="en" if model.is_multilingual else None)


def start_sequence(tokenizer) -> list[int]:
    return list(tokenizer.sot_sequence_including_notimestamps)


def prompt_tokens(tokenizer, text: str) -> list[int]:
    """The start sequence, then `text` as the first words of the transcript (a leading space, as
    the decoder writes them)."""
    if not text.strip():
        raise WhisperLensError("empty prompt: give a word such as 'traffic' or 'New York'")
    return start_sequence(tokenizer) + tokenizer.encode(" " + text.strip())


def word_token(tokenizer, word: str) -> int:
    """The one token of " word"; a WhisperLensError when it is empty, or several tokens."""
    if not word.strip() or word != word.strip():
        raise WhisperLensError(f"{word!r} is not a word: give one word, without spaces")
    tokens = tokenizer.encode(" " + word)
    if len(tokens) != 1:
        pieces = " + ".join(repr(tokenizer.decode([token])) for token in tokens)
        raise WhisperLensError(f"{word!r} is not one token of the model's vocabulary "
                               f"(it is {pieces}); neighbours need a single-token word")
    return tokens[0]


def no_audio_features(model, condition: str) -> torch.Tensor:
    """(1, audio positions, d): what the decoder cross-attends to under `condition`.

    Zeros are given as one position, not 1500: every key is then the key projection's bias, so
    attention is uniform over identical values whatever their number, and one position gives the
    same output at a 1500th of the cost. Under no_cross the cross-attention output is replaced anyway.
    """
    check_conditions([condition])
    if condition == "silence":
        mel = log_mel(np.zeros(N_SAMPLES, dtype=np.float32), model.dims.n_mels).to(model.device)
        with torch.inference_mode():
            return model.embed_audio(mel[None])
    parameter = next(model.parameters())
    return torch.zeros(1, 1, model.dims.n_audio_state, dtype=parameter.dtype, device=parameter.device)


def condition_interventions(condition: str) -> list:
    if condition == "no_cross":
        return [Patch("decoder.blocks.*.hook_cross_attn_out", value=torch.zeros(()))]
    return []


def next_token_logits(model, prompts: Sequence[Sequence[int]], condition: str, batch_size: int = 256,
                      columns: torch.Tensor | None = None, log_probs: bool = False) -> torch.Tensor:
    """(prompts, vocabulary) float32 logits of the token after each prompt under `condition` (with
    `log_probs`, log-probabilities over the whole vocabulary), or only the given vocabulary
    `columns`. Prompts of one length run together."""
    features = no_audio_features(model, condition)
    out = torch.empty(len(prompts), model.dims.n_vocab if columns is None else len(columns))
    by_length: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt), []).append(index)
    with torch.inference_mode(), model.intervene(*condition_interventions(condition)):
        for indices in by_length.values():
            for first in range(0, len(indices), batch_size):
                chunk = indices[first: first + batch_size]
                tokens = torch.tensor([prompts[i] for i in chunk], device=features.device)
                logits = model.decoder.unembed(last_position_output(model, tokens, features)).float().cpu()
                if log_probs:
                    logits = logits.log_softmax(-1)
                out[chunk] = logits if columns is None else logits[:, columns]
    return out


class _Stop(Exception):
    """Raised from a hook once the decoder's final LayerNorm output is in hand."""


def last_position_output(model, tokens: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """(batch, d): the decoder's final LayerNorm output at the last position. The pass stops
    there, so the 51k-way unembedding runs for one position instead of all (a third of the cost
    of a 3-token prompt). `features` has a batch of 1: attention broadcasts its keys and values."""
    captured = []

    def capture(activation: torch.Tensor, hook) -> None:
        captured.append(activation[:, -1])
        raise _Stop

    try:
        with model.hooks(fwd=[("decoder.hook_ln_final", capture)]):
            model.decoder(tokens, features)
    except _Stop:
        pass
    return captured[0]
