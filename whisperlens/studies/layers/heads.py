"""Which decoder heads drive a configuration's repetition loops: the clips that loop under it
are decoded again with each decoder head zeroed in turn (self-attention and cross-attention, in
every block the configuration keeps), and each head is scored by the share of loops that stop.
Zeroing is the `AblateHeads` intervention; every variant shares the batch's one encoder pass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .metrics import score_speech, speech_rates
from .removal import Configuration, decode_configurations

ATTENTIONS = ("attn", "cross_attn")


def decoder_heads(model, configuration: Configuration) -> list[tuple[str, int]]:
    """(attention module, head) for every head of the decoder blocks the configuration runs."""
    blocks = configuration.kept if configuration.stack == "decoder" else range(model.dims.n_text_layer)
    return [(f"decoder.blocks.{block}.{attention}", head) for block in blocks for attention in ATTENTIONS
            for head in range(model.dims.n_text_head)]


def trace_loops(model, clips: Sequence, configuration: Configuration, max_tokens: int, batch_size: int,
                progress=None) -> list[dict]:
    """Per head: the share of the clips' loops that stop when it is zeroed, and their WER then."""
    heads = decoder_heads(model, configuration)
    variants = [replace(configuration, zeroed_head=head) for head in heads]
    decodes = decode_configurations(model, clips, variants, max_tokens, batch_size, progress, desc="heads")
    counts = score_speech([clip.text for clip in clips], decodes)
    return [{"attention": attention, "head": head, "block": int(attention.split(".")[2]),
             "kind": attention.split(".")[-1], "loops_stopped": round(1 - float(counts["repetition"][row].mean()), 4),
             "wer": speech_rates(counts, row)["wer"]}
            for row, (attention, head) in enumerate(heads)]
