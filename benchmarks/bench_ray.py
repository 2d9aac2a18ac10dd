"""The Ray executor against the local one, on this machine: the feature harvest (the features
study's default hooks and bases) over the first N English clips of a corpus.

- local, T threads: `Harvester.run` in this process, torch on T threads (the default executor);
- local sharded, 1 thread: the same shards Ray runs, run and merged in this process;
- ray, W workers: an in-process Ray cluster with as many CPUs as this machine, W worker actors
  of one CPU (one torch thread) each. The wall time counts everything a user waits for: actor
  start, the model loaded in each worker, the shards, the partials sent back and merged.

Scaling efficiency is clips/s at 2 workers over twice clips/s at 1 worker. Ray's overhead per
shard is (ray at 1 worker - local sharded at 1 thread) / shards: the same work on one thread,
so the difference is what Ray adds (actor start and model load included, spread over the
shards). A no-op job's round trip per shard is printed too: Ray's cost with no work and no data.

    python benchmarks/bench_ray.py [--corpus DIR] [--clips 768] [--batch-size 32] [--shard-batches 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import dataclass

import torch

from whisperlens.distributed import ModelRequest

LIBRISPEECH_HOURS = 960
CLIP_SECONDS = 2.0  # the corpus's clip length, and the harvest's window
CORES_PER_NODE = 16  # an assumed node size for the estimate


@dataclass
class NoopJob:
    """A shard job that does nothing (its worker loads no model): what Ray costs per shard by itself."""

    model: ModelRequest = ModelRequest()

    def fingerprint(self) -> str:
        return "noop"

    def open(self, model):
        return None

    def run(self, state, indices):
        return NoopPartial()

    def partial_from_arrays(self, arrays):
        return NoopPartial()


class NoopPartial:
    def merge(self, later):
        return self

    def arrays(self):
        return {}


def timed(function, *args, **options):
    start = time.perf_counter()
    value = function(*args, **options)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus)")
    parser.add_argument("--clips", type=int, default=768)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-batches", type=int, default=4)
    parser.add_argument("--noop-shards", type=int, default=64)
    args = parser.parse_args()

    from whisperlens.corpus.selection import CorpusSelection
    from whisperlens.distributed import ExecutorSpec, run_sharded, shard_ranges
    from whisperlens.distributed.ray_backend import connect
    from whisperlens.features.config import FeaturesConfig
    from whisperlens.features.harvest import Harvester, model_for_mode
    from whisperlens.features.sharded import HarvestJob, model_request

    selection = CorpusSelection(path=args.corpus, sets=("english",), clips=args.clips)
    corpus = selection.open()
    config = FeaturesConfig(bases=("neurons", "random"), batch_size=args.batch_size).harvest_config()
    model = model_for_mode(config.model, config.mode, "cpu")
    n_shards = len(shard_ranges(len(corpus), args.batch_size * args.shard_batches))
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; corpus {corpus.root}: {len(corpus)} English clips, "
          f"batches of {args.batch_size}, {n_shards} shards of {args.shard_batches} batches")
    print(f"harvest: hooks {', '.join(config.hooks)}; bases {', '.join(config.bases)}")
    Harvester(corpus[: args.batch_size], config, model).run(progress=False)  # warm-up: numba, oneDNN kernels

    seconds = {}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        seconds[f"local, {threads} threads"], _ = timed(Harvester(corpus, config, model).run, progress=False)
    job = HarvestJob(selection, config, model_request(config.model, config.mode, "cpu"), "bench")
    shards = shard_ranges(len(corpus), args.batch_size * args.shard_batches)
    seconds["local sharded, 1 thread"], _ = timed(run_sharded, job, shards, ExecutorSpec(), model=model)
    torch.set_num_threads(2)

    started, _ = timed(connect, ExecutorSpec("ray"))
    print(f"ray: in-process cluster started in {started:.1f} s")
    for workers in (1, 2):
        spec = ExecutorSpec("ray", ray_workers=workers, shard_batches=args.shard_batches)
        seconds[f"ray, {workers} worker{'s' if workers > 1 else ''}"], _ = timed(run_sharded, job, shards, spec)
    noop, _ = timed(run_sharded, NoopJob(), shard_ranges(args.noop_shards, 1), ExecutorSpec("ray", ray_workers=1))

    rate = {name: len(corpus) / wall for name, wall in seconds.items()}
    for name, wall in seconds.items():
        print(f"{name:26s} {wall:7.1f} s  {rate[name]:6.1f} clips/s")
    efficiency = rate["ray, 2 workers"] / (2 * rate["ray, 1 worker"])
    overhead = (seconds["ray, 1 worker"] - seconds["local sharded, 1 thread"]) / n_shards
    print(f"scaling efficiency, 1 -> 2 workers: {efficiency:.2f}")
    print(f"ray at 2 workers / local at 2 threads: {rate['ray, 2 workers'] / rate['local, 2 threads']:.2f}")
    print(f"ray overhead per shard of {args.batch_size * args.shard_batches} clips: {overhead:.2f} s "
          f"(actor start and model load included); no-op shard round trip: {1000 * noop / args.noop_shards:.0f} ms")
    per_clip = 1 / rate["local, 1 threads"]
    print(f"per-clip cost, local, 1 thread: {1000 * per_clip:.1f} ms of one core")
    windows = LIBRISPEECH_HOURS * 3600 / CLIP_SECONDS
    print(f"estimate, LibriSpeech {LIBRISPEECH_HOURS} h = {windows:,.0f} windows of {CLIP_SECONDS:.0f} s, this harvest, "
          f"{CORES_PER_NODE}-core CPU nodes like this one, one worker per core, at the efficiency above:")
    for nodes in (1, 4, 16, 64):
        hours = windows * per_clip / (nodes * CORES_PER_NODE * min(efficiency, 1.0)) / 3600
        print(f"  {nodes:3d} nodes: {hours:8.1f} h")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"driver CPU time {usage.ru_utime + usage.ru_stime:.0f} s; load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
