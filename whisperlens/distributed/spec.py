"""Where corpus-wide work runs: the executor part of a study's config (`--executor`, `--ray-address`, ...)."""

from __future__ import annotations

from dataclasses import dataclass

import simple_parsing

from ..errors import WhisperLensError

EXECUTORS = ("local", "ray")


@dataclass
class ExecutorSpec:
    """This process, or a Ray cluster; not part of a result's fingerprint (both give the same result)."""

    executor: str = simple_parsing.field(default="local", choices=EXECUTORS)  # local: this process; ray: a Ray cluster
    ray_address: str | None = None  # Ray cluster to join (auto: the one `ray start` runs here); default: start one in-process
    ray_workers: int | None = None  # worker actors, each holding one model (default: one per CPU of the cluster)
    ray_cpus_per_worker: int = 1  # CPUs (and torch threads) each worker actor reserves
    shard_batches: int = 8  # batches per shard: the unit a Ray task runs, retries and checkpoints

    def validate(self) -> None:
        if self.executor not in EXECUTORS:
            raise WhisperLensError(f"--executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")
        for flag, value in (("--ray-workers", self.ray_workers), ("--ray-cpus-per-worker", self.ray_cpus_per_worker),
                            ("--shard-batches", self.shard_batches)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise WhisperLensError(f"{flag} must be a positive whole number, got {value!r}")
        if self.ray_address is not None and self.executor != "ray":
            raise WhisperLensError("--ray-address needs --executor ray")

    @property
    def is_ray(self) -> bool:
        return self.executor == "ray"
