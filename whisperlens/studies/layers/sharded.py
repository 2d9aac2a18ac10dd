"""The layers study's corpus passes as shard jobs (whisperlens.distributed): the logit lens on the
English clips and layer removal on the English and non-speech clips, on shards of whole batches,
here or on a Ray cluster, with the readings and transcripts of one pass. The Asterisk prompts
(recordings outside the corpus, read from this machine's Asterisk sounds) decode on the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...corpus.selection import CorpusSelection, corpus_key, english_speech
from ...distributed import ItemsJob, ModelRequest, score_items
from ...distributed.items import transcript_columns, transcript_lists
from .lens import LensResult, lens_columns, lens_result
from .removal import Configuration, Decodes, decode_configurations


def nonspeech_clips(corpus, per_kind: int) -> list:
    """The first `per_kind` clips of each kind of a corpus's non-speech clips."""
    taken: dict[str, int] = {}
    clips = []
    for clip in corpus:
        kind = clip.meta.get("kind", "")
        if taken.get(kind, 0) < per_kind:
            taken[kind] = taken.get(kind, 0) + 1
            clips.append(clip)
    return clips


@dataclass
class LensJob(ItemsJob):
    """The logit lens (and the tuned lens, given translators) on a selection's English clips."""

    corpus: CorpusSelection
    corpus_key: str
    model: ModelRequest
    batch_size: int
    translators: object = None  # tuned.Translators trained on the driver, or None

    def items(self) -> list:
        return english_speech(self.opened_corpus())

    def score(self, model, clips, first, progress) -> dict:
        return lens_columns(model, clips, self.batch_size, progress is not None, self.translators, first)


@dataclass
class DecodeJob(ItemsJob):
    """Greedy transcripts under every configuration: of a selection's English clips, or (per_kind
    > 0) of the first `per_kind` non-speech clips of each kind."""

    corpus: CorpusSelection
    corpus_key: str
    model: ModelRequest
    configurations: tuple[Configuration, ...]
    max_tokens: int
    batch_size: int
    desc: str
    per_kind: int = 0

    def items(self) -> list:
        corpus = self.opened_corpus()
        return nonspeech_clips(corpus, self.per_kind) if self.per_kind else english_speech(corpus)

    def score(self, model, clips, first, progress) -> dict:
        decodes = decode_configurations(model, clips, self.configurations, self.max_tokens, self.batch_size, progress,
                                        self.desc)
        return transcript_columns(decodes.texts, decodes.tokens, decodes.hit_limit, self.max_tokens)


def lens_sharded(model, clips: Sequence, selection: CorpusSelection, config, context, translators=None) -> LensResult:
    """`run_lens` of the selection's English clips, in shards run by `config.executor`."""
    job = LensJob(selection, corpus_key(context.corpus(selection)), ModelRequest.for_study(config), config.batch_size,
                  translators)
    columns = score_items(job, clips, config.batch_size, config.executor, context, "logit lens", model=model)
    return lens_result(columns, model.dims.n_text_layer)


def decode_sharded(model, clips: Sequence, selection: CorpusSelection, found: Sequence[Configuration], config, context,
                   desc: str, per_kind: int = 0) -> Decodes:
    """`decode_configurations` of `clips`, the selection's English clips (or its non-speech clips,
    `per_kind` of each kind), in shards run by `config.executor`."""
    job = DecodeJob(selection, corpus_key(context.corpus(selection)), ModelRequest.for_study(config), tuple(found),
                    config.max_tokens, config.batch_size, desc, per_kind)
    columns = score_items(job, clips, config.batch_size, config.executor, context, desc, model=model)
    texts, tokens, hit_limit = transcript_lists(columns)
    return Decodes(texts, tokens, hit_limit)
