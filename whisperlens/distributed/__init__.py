"""Corpus-wide work cut into shards and run here or on a Ray cluster, with results identical to
one pass.

A corpus-wide reduction is a *shard job*: a worker opens it once (loading the model), runs it on
a shard of clip indices and returns a *partial*; partials merge, associatively and
deterministically, on the driver. `run_sharded` runs a job's shards in this process
(`--executor local`) or on Ray (`--executor ray`), merges them in shard order, and checkpoints
the merged prefix so that a restarted driver resumes from it.

    from whisperlens.distributed import ExecutorSpec, run_sharded
    merged = run_sharded(job, shard_ranges(len(corpus), batch_size * 8), ExecutorSpec("ray", "auto"))

Only `ray_backend` imports Ray, and only when a Ray executor runs.
"""

from .items import ItemScores, ItemsJob, score_items
from .jobs import ModelRequest, ShardJob
from .runner import run_sharded, shard_ranges
from .spec import EXECUTORS, ExecutorSpec

__all__ = ["EXECUTORS", "ExecutorSpec", "ItemScores", "ItemsJob", "ModelRequest", "ShardJob", "run_sharded", "score_items",
           "shard_ranges"]
