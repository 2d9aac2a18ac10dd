"""The probes' corpus pass as a shard job (whisperlens.distributed): `collect` on shards of
whole batches of the stream order, here or on a Ray cluster, merged into what one pass gives."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ...audio import encoder_positions
from ...corpus.selection import CorpusSelection, corpus_key
from ...distributed import ExecutorSpec, ModelRequest, run_sharded, shard_ranges
from .collect import Collected, collect


@dataclass
class CollectJob:
    corpus: CorpusSelection
    stream: tuple[int, ...]  # corpus indices in stream order
    frame_starts: tuple[int, ...]  # frames the stream holds before each of them (the sample keys' offset)
    frame_clips: tuple[int, ...]
    frames_per_class: int
    seed: int
    batch_size: int
    model: ModelRequest
    corpus_key: str

    def fingerprint(self) -> str:
        record = [self.corpus_key, self.stream, self.frame_clips, self.frames_per_class, self.seed, self.batch_size,
                  self.model.key()]
        return hashlib.sha256(json.dumps(record).encode()).hexdigest()[:16]

    def open(self, model):
        return model, self.corpus.open(), dict(zip(self.stream, self.frame_starts)), set(self.frame_clips)

    def run(self, state, indices) -> Collected:
        model, corpus, frame_start, frame_clips = state
        return collect(model, corpus, list(indices), frame_clips, self.frames_per_class, self.seed, self.batch_size,
                       first_frame=frame_start[indices[0]])

    def partial_from_arrays(self, arrays: dict) -> Collected:
        return Collected.from_arrays(arrays)


def collect_sharded(corpus, selection: CorpusSelection, request: ModelRequest, indices: list[int], frame_clips: set[int],
                    frames_per_class: int, seed: int, batch_size: int, executor: ExecutorSpec,
                    progress: bool | str = False, model=None) -> Collected:
    """`collect(...)` over `indices`, in shards of `executor.shard_batches` batches run by `executor`."""
    lengths = [encoder_positions(len(corpus[i].audio)) for i in indices]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()
    job = CollectJob(selection, tuple(indices), tuple(starts), tuple(sorted(frame_clips)), frames_per_class, seed,
                     batch_size, request, corpus_key(corpus))
    shards = [indices[r.start: r.stop] for r in shard_ranges(len(indices), batch_size * executor.shard_batches)]
    return run_sharded(job, shards, executor, progress=progress, model=model)
