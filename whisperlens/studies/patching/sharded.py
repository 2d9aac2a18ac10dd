"""The override matrix's pairs as a shard job (whisperlens.distributed): `layer_matrix` on shards
of whole batches of consecutive pairs, here or on a Ray cluster, with the cells of one pass."""

from __future__ import annotations

from dataclasses import dataclass

from ...corpus.selection import CorpusSelection, corpus_key
from ...distributed import ItemsJob, ModelRequest, score_items
from .matrix import layer_matrix
from .pairs import minimal_pairs


@dataclass
class MatrixJob(ItemsJob):
    """Every (source layer, target layer) cell of `count` minimal pairs spread over a selection's."""

    corpus: CorpusSelection
    corpus_key: str
    model: ModelRequest
    count: int
    language: str | None
    batch_size: int

    def items(self) -> list:
        return minimal_pairs(self.opened_corpus(), self.count)[0]

    def score(self, model, pairs, first, progress) -> dict:
        return layer_matrix(model, pairs, self.language, self.batch_size, progress)


def layer_matrix_sharded(model, pairs: list, config, context, language: str | None = "en") -> dict:
    """`layer_matrix` of `pairs`, the selection's `config.pairs` minimal pairs, in shards of
    `config.executor.shard_batches` batches of pairs run by `config.executor`."""
    job = MatrixJob(config.corpus, corpus_key(context.corpus(config.corpus)), ModelRequest.for_study(config),
                    config.pairs, language, config.batch_size)
    return score_items(job, pairs, config.batch_size, config.executor, context, "override matrix", model=model)
