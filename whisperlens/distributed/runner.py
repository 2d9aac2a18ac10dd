"""Shard jobs, and the loop that runs their shards and merges the partials in shard order.

Partials are merged in shard order, as soon as the shards before them are in, so a merge need
only be associative (not commutative) to give the result of one pass: shard 0, then 1, ... is
the corpus order. The merged prefix is checkpointed; a driver restarted with the same run
directory loads it and runs only the shards after it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import WhisperLensError
from .jobs import Partial, ShardJob, Workspace
from .spec import ExecutorSpec


def shard_ranges(n_items: int, shard_size: int) -> list[range]:
    """Consecutive index ranges of `shard_size` (the last one shorter). Shards of whole batches
    keep every batch, and so every activation, the same as in one pass."""
    if shard_size < 1:
        raise WhisperLensError(f"shard size must be positive, got {shard_size}")
    return [range(start, min(start + shard_size, n_items)) for start in range(0, n_items, shard_size)]


class _OrderedMerge:
    """Folds partials in shard order and checkpoints the merged prefix."""

    def __init__(self, job: ShardJob, n_shards: int, checkpoint, save_every_s: float):
        self.job, self.n_shards, self.checkpoint, self.save_every_s = job, n_shards, checkpoint, save_every_s
        self.merged: Partial | None = None
        self.done = 0  # shards merged
        self.pending: dict[int, Partial] = {}
        self.last_save = time.monotonic()
        saved = checkpoint.load() if checkpoint is not None else None
        if saved is not None:
            self.done = int(saved.pop("__shards_merged__"))
            self.merged = job.partial_from_arrays(saved) if self.done else None

    def add(self, shard: int, partial: Partial) -> None:
        self.pending[shard] = partial
        merged_any = False
        while self.done in self.pending:
            following = self.pending.pop(self.done)
            self.merged = following if self.merged is None else self.merged.merge(following)
            self.done += 1
            merged_any = True
        if merged_any and self.checkpoint is not None and self.done < self.n_shards \
                and time.monotonic() - self.last_save >= self.save_every_s:
            self.save()

    def save(self) -> None:
        import numpy as np

        self.checkpoint.save({**(self.merged.arrays() if self.merged is not None else {}),
                              "__shards_merged__": np.array(self.done)})
        self.last_save = time.monotonic()


SAVE_EVERY_S = 30.0  # the longest a checkpoint of the merged shards lags behind


def run_sharded(job: ShardJob, shards: Sequence[Sequence[int]], spec: ExecutorSpec | None = None, *,
                checkpoint_path: Path | None = None, save_every_s: float | None = None, progress: bool | str = False,
                model=None) -> Partial:
    """Run `job` on every shard (here, or on Ray as `spec` says) and merge the partials in shard
    order. With `checkpoint_path`, the merged prefix is saved at most every `save_every_s` seconds
    and at the end, and a rerun resumes from it (the caller deletes it once its result is saved).
    `model`: the model already loaded here, for the local executor."""
    from tqdm import tqdm

    from ..study.context import Checkpoint

    spec = spec or ExecutorSpec()
    spec.validate()
    if not shards:
        raise WhisperLensError("nothing to run: no shards")
    shards = [list(shard) for shard in shards]
    key = hashlib.sha256(json.dumps([job.fingerprint(), shards]).encode()).hexdigest()[:16]
    checkpoint = Checkpoint(Path(checkpoint_path), key) if checkpoint_path is not None else None
    merge = _OrderedMerge(job, len(shards), checkpoint, SAVE_EVERY_S if save_every_s is None else save_every_s)
    todo = [(i, shard) for i, shard in enumerate(shards) if i >= merge.done]
    label = progress if isinstance(progress, str) else "shards"
    with tqdm(total=sum(map(len, shards)), initial=sum(len(s) for s in shards[: merge.done]), unit="clip", desc=label,
              disable=not progress) as bar:
        def on_result(shard: int, partial: Partial) -> None:
            merge.add(shard, partial)
            bar.update(len(shards[shard]))

        if spec.is_ray:
            from .ray_backend import run_on_ray

            run_on_ray(job, todo, spec, on_result)
        else:
            _run_here(job, todo, on_result, model)
    if checkpoint is not None and todo:
        merge.save()  # the whole result: a rerun after a later step fails needs no shard again
    return merge.merged


def _run_here(job: ShardJob, todo: list[tuple[int, list[int]]], on_result: Callable, model) -> None:
    workspace = Workspace({job.model.key(): model} if model is not None else None)
    with workspace.stack:
        for shard, indices in todo:
            on_result(shard, workspace.run(job, indices))
