"""The ±k band sweep: the encoder's self-attention limited to a band of ±k frames, on every head
of every layer, on one head at a time, on all the local heads at once or on the global heads
alone; every clip decoded greedily under each mask, batched across clips, and its reference
scored teacher-forced on the same encoder output.

The masks are `AttentionMask` interventions. Each batch's clean encoder pass keeps every block's
input, and a mask that starts at block L resumes from block L's input (`encode.encode_from`),
so masking one head of the last layer costs one block, not four, and "no mask" is the clean pass.
A band on every head runs chunk by chunk over the keys it reaches (`encode.banded_encoder_output`).
Decoding drops finished rows and shares the cross-attention keys and values with the
teacher-forced scoring (`greedy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from ...audio import N_ENCODER_FRAMES
from ...corpus.selection import CorpusSelection, corpus_key, english_speech
from ...distributed import ItemsJob, ModelRequest, score_items
from ...distributed.items import transcript_columns, transcript_lists
from ...greedy import DECODE_ROWS, concat_kv, cross_kv, greedy_decode
from ...interventions import AttentionMask
from ...models.loading import tokenizer_for
from ...transcripts import clip_batches, clip_mels
from .encode import banded_encoder_output, block_inputs, encode_from, reference_log_prob, teacher_tokens
from .scoring import Transcripts

HALF_WIDTHS = (None, 200, 100, 75, 50, 20, 10, 5)  # None: no mask (each position sees all 1500)
HEAD_HALF_WIDTH = 10  # the seeds' claim: local heads can be masked to k=10 at no cost


@dataclass(frozen=True)
class BandMask:
    """A ±half_width band on some encoder heads: `heads` (layer, head) pairs, or None for all."""

    family: str  # "all", "head", "local" or "global"
    half_width: int | None
    heads: tuple[tuple[int, int], ...] | None = None

    @property
    def name(self) -> str:
        if self.half_width is None:
            return "no mask"
        if self.family == "all":
            return f"all heads, k={self.half_width}"
        if self.family == "head":
            return f"head {self.heads[0][0]}.{self.heads[0][1]}, k={self.half_width}"
        return f"{self.family} heads ({len(self.heads)}), k={self.half_width}"

    @property
    def first_block(self) -> int:
        return 0 if self.heads is None else min(layer for layer, _ in self.heads)

    def interventions(self) -> list[AttentionMask]:
        if self.half_width is None:
            return []
        if self.heads is None:
            return [AttentionMask(half_width=self.half_width)]
        return [AttentionMask(layers=[layer], heads=[head for _, head in group], half_width=self.half_width)
                for layer, group in groupby(sorted(self.heads), key=lambda pair: pair[0])]


def global_masks(half_widths: Sequence[int | None] = HALF_WIDTHS) -> list[BandMask]:
    return [BandMask("all", k) for k in half_widths]


def head_masks(n_layers: int, n_heads: int, half_width: int = HEAD_HALF_WIDTH) -> list[BandMask]:
    return [BandMask("head", half_width, ((layer, head),)) for layer in range(n_layers) for head in range(n_heads)]


def group_masks(local: Sequence[tuple[int, int]], global_: Sequence[tuple[int, int]],
                half_width: int = HEAD_HALF_WIDTH) -> list[BandMask]:
    """All the local heads at once, and the global heads alone (a group with no head is left out)."""
    return [BandMask(family, half_width, tuple(heads)) for family, heads in (("local", local), ("global", global_)) if heads]


def masked_output(model, inputs, clean, mask: BandMask):
    """The encoder output under `mask`, from the clean pass's block inputs."""
    if mask.family == "all" and mask.half_width is not None and mask.half_width < N_ENCODER_FRAMES - 1:
        return banded_encoder_output(model, inputs[0], mask.half_width)
    return encode_from(model, inputs, mask.first_block, mask.interventions(), clean)


def decode_masks(model, clips: Sequence, masks: Sequence[BandMask], max_tokens: int, batch_size: int,
                 progress=None, desc: str = "band sweep", decode_rows: int = DECODE_ROWS) -> list[Transcripts]:
    """Each clip's greedy transcript and reference log-probability under each mask. The encoder runs
    on `batch_size` clips at a time; the decoder on the outputs of several masks at once (about
    `decode_rows` rows): a decoding step costs nearly the same for 1 row as for 64 (it reads the
    whole unembedding), and a batch runs as many steps as its longest transcript."""
    tokenizer = tokenizer_for(model)
    prompt = len(tokenizer.sot_sequence_including_notimestamps)
    outputs = [Transcripts.empty() for _ in masks]
    for batch in clip_batches(clips, batch_size, progress, desc):
        inputs, clean = block_inputs(model, clip_mels(model, batch))
        tokens, lengths = teacher_tokens(tokenizer, [clip.text for clip in batch], model.dims.n_text_ctx)
        per_group = max(1, decode_rows // len(batch))
        for first in range(0, len(masks), per_group):
            group = list(zip(outputs, masks, strict=True))[first: first + per_group]
            kv = concat_kv([cross_kv(model, masked_output(model, inputs, clean, mask)) for _, mask in group])
            results = greedy_decode(model, kv, max_tokens)
            log_prob = reference_log_prob(model, kv, tokens.repeat(len(group), 1), lengths * len(group), prompt)
            for index, (output, _) in enumerate(group):
                rows = slice(index * len(batch), (index + 1) * len(batch))
                output.extend(results[rows], log_prob[rows], max_tokens)
            del kv
        del inputs, clean
    return outputs


# ---- the sweep over the selection's English clips, in shards (whisperlens.distributed) -------


@dataclass
class SweepJob(ItemsJob):
    """decode_masks on the first `clips` English clips of a corpus selection, scored per clip."""

    corpus: CorpusSelection
    corpus_key: str
    model: ModelRequest
    clips: int
    masks: tuple[BandMask, ...]
    max_tokens: int
    batch_size: int
    desc: str

    def items(self) -> list:
        return english_speech(self.opened_corpus())[: self.clips]

    def score(self, model, clips, first, progress) -> dict:
        outputs = decode_masks(model, clips, self.masks, self.max_tokens, self.batch_size, progress, self.desc)
        columns = transcript_columns([o.texts for o in outputs], [o.tokens for o in outputs],
                                     [o.hit_limit for o in outputs], self.max_tokens)
        return {**columns, "log_prob": np.array([o.log_prob for o in outputs], dtype=np.float64).T}


def sweep_english(model, clips: Sequence, masks: Sequence[BandMask], config, context, desc: str) -> list[Transcripts]:
    """`decode_masks` of `clips`, the first English clips of `config.corpus`, in shards run by
    `config.executor` (here or on a Ray cluster): the same transcripts and log-probabilities."""
    corpus = context.corpus(config.corpus)
    assert [clip.id for clip in clips] == [clip.id for clip in english_speech(corpus)[: len(clips)]]
    job = SweepJob(config.corpus, corpus_key(corpus), ModelRequest.for_study(config), len(clips), tuple(masks),
                   config.max_tokens, config.batch_size, desc)
    columns = score_items(job, clips, config.batch_size, config.executor, context, desc, model=model)
    texts, tokens, hit_limit = transcript_lists(columns)
    return [Transcripts(texts[row], tokens[row], hit_limit[row].tolist(), columns["log_prob"][:, row].tolist())
            for row in range(len(masks))]
