"""The Ray executor: one actor per worker holds the model; each shard is one actor task.

Why actors and tasks rather than Ray Data's `map_batches` with an actor pool: our unit of work
is a shard of clip indices whose *partial result* (top-k heaps, histograms, samples) must come
back whole to be merged in shard order, and a restarted driver must skip the shards already
merged. Ray Data streams rows into a dataset and owns the batching, ordering and retries; we
would have to undo all three. A pool of actors (each loading the model once) fed shard tasks
with `ray.wait` gives the ordering and resume for free, and Ray's own fault tolerance does the
rest: an actor whose process dies is restarted (`max_restarts`) and its unfinished task is
resubmitted (`max_task_retries`), so a killed worker's shard is retried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from ..errors import WhisperLensError
from .jobs import ShardJob, Workspace
from .spec import ExecutorSpec

# An in-process cluster (no --ray-address) gets a small object store: partials are megabytes.
LOCAL_OBJECT_STORE_BYTES = 500_000_000
# How often a worker may die (killed, out of memory, its node lost) before the run gives up: a
# crash that recurs on every try should end the run, not loop.
RESTARTS = 3


class ShardWorker:
    """A Ray actor: a Workspace (models and opened jobs) that runs shards."""

    def __init__(self, threads: int):
        import numba
        import torch

        # Both thread pools, torch's and the statistics kernel's (numba defaults to every CPU of
        # the machine): two workers of one CPU must not run four busy threads on two cores.
        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        self.workspace = Workspace()

    def run(self, job: ShardJob, indices: Sequence[int]):
        return self.workspace.run(job, indices)

    def pid(self) -> int:
        return os.getpid()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line error when a HOST:PORT address does not accept a connection: `ray.init` would
    retry the cluster's control store for minutes before giving up. ("auto" and "ray://" addresses
    are Ray's to resolve; it fails fast on those.)"""
    import socket

    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise WhisperLensError(f"cannot reach a Ray cluster at {address!r}: {error.strerror or error}") from None


def connect(spec: ExecutorSpec):
    """Join the cluster at `spec.ray_address`, or start one in this process."""
    try:
        import ray
    except ImportError:
        raise WhisperLensError("--executor ray needs Ray: pip install -c constraints.txt 'whisperlens[ray]'") from None
    if not ray.is_initialized():
        options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if spec.ray_address is None:  # "local": a new cluster, even where `ray start` runs one
                ray.init(address="local", num_cpus=os.cpu_count(), object_store_memory=LOCAL_OBJECT_STORE_BYTES, **options)
            else:
                check_reachable(spec.ray_address)
                ray.init(address=spec.ray_address, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise WhisperLensError(f"cannot reach a Ray cluster at {spec.ray_address!r}: {str(error).splitlines()[0]}") from None
    return ray


def run_on_ray(job: ShardJob, todo: list[tuple[int, list[int]]], spec: ExecutorSpec, on_result: Callable) -> None:
    """Run each shard of `todo` as a task on a pool of worker actors; hand each partial to
    `on_result(shard, partial)` as it arrives."""
    if not todo:
        return
    ray = connect(spec)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n_workers = min(len(todo), spec.ray_workers or max(1, cpus // spec.ray_cpus_per_worker))
    actor = ray.remote(num_cpus=spec.ray_cpus_per_worker, max_restarts=RESTARTS, max_task_retries=RESTARTS)(ShardWorker)
    workers = [actor.remote(spec.ray_cpus_per_worker) for _ in range(n_workers)]
    job_ref = ray.put(job)
    queue = list(todo)
    in_flight = {}

    def submit(worker) -> None:
        shard, indices = queue.pop(0)
        in_flight[worker.run.remote(job_ref, indices)] = (worker, shard)

    try:
        for worker in workers[: len(queue)]:
            submit(worker)
        while in_flight:
            (ready,), _ = ray.wait(list(in_flight), num_returns=1)
            worker, shard = in_flight.pop(ready)
            try:
                partial = ray.get(ready)
            except ray.exceptions.RayTaskError as error:
                cause = error.cause if isinstance(error.cause, WhisperLensError) else None
                raise (cause or WhisperLensError(f"shard {shard} failed on Ray: {str(error).splitlines()[0]}")) from None
            except ray.exceptions.RayActorError:
                raise WhisperLensError(f"shard {shard}: its Ray worker died {RESTARTS + 1} times; see the cluster's logs "
                                       "(e.g. /tmp/ray/session_latest/logs)") from None
            on_result(shard, partial)
            if queue:
                submit(worker)
    finally:
        for worker in workers:
            ray.kill(worker)
