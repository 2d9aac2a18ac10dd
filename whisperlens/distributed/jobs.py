"""What a shard job is: a value that travels to the workers, is opened once per worker on the
model it asks for, and turns a shard of clip indices into a mergeable partial."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Partial(Protocol):
    """A mergeable partial result: what one shard gives, or the merge of consecutive shards."""

    def merge(self, later: Partial) -> Partial:
        """This partial followed by `later` (the shards after this one's)."""

    def arrays(self) -> dict:
        """Named numpy arrays: what a checkpoint holds (the job's `partial_from_arrays` reads them back)."""


@dataclass(frozen=True)
class ModelRequest:
    """The model a shard job needs, as a value a worker process can load by itself."""

    name: str = "tiny.en"
    dtype: str = "float32"
    device: str = "cpu"
    interventions: str = "[]"  # JSON list of intervention specs, on for the job's whole run
    random_weights_seed: int | None = None  # a Whisper of the same size with seeded random weights (probes' control)

    @classmethod
    def for_study(cls, config) -> ModelRequest:
        """The model a study config (a ModelStudyConfig) runs on, its interventions on."""
        return cls(config.model.model, config.model.dtype, config.model.device, json.dumps(config.interventions))

    def key(self) -> str:
        return json.dumps([self.name, self.dtype, self.device, self.interventions, self.random_weights_seed])

    def load(self, stack: contextlib.ExitStack):
        from ..devices import dtype_named
        from ..interventions import interventions_from_json
        from ..models.loading import load_model

        model = load_model(self.name, device=self.device, dtype=dtype_named(self.dtype))
        if self.random_weights_seed is not None:
            from ..models.random import random_whisper

            model = random_whisper(model, self.random_weights_seed)
        specs = interventions_from_json(self.interventions)
        if specs:
            stack.enter_context(model.intervene(*specs))
        return model


class ShardJob(Protocol):
    """A corpus-wide reduction cut into shards. It travels to the workers by pickling, so it
    holds values (a corpus selection, a config, a ModelRequest), never a loaded model."""

    model: ModelRequest

    def fingerprint(self) -> str:
        """Everything the job's partials depend on (a checkpoint is resumed only under the same one)."""

    def open(self, model) -> Any:
        """Worker-side state built once per worker on the loaded model (e.g. the opened corpus)."""

    def run(self, state, indices: Sequence[int]) -> Partial:
        """The partial of the clips at `indices` (consecutive, in stream order)."""

    def partial_from_arrays(self, arrays: dict) -> Partial:
        """The inverse of `Partial.arrays()`."""


class Workspace:
    """What a worker process keeps between shards: its models and opened jobs, each made once."""

    def __init__(self, models: dict | None = None):
        self.models: dict[str, Any] = dict(models or {})
        self.opened: dict[str, Any] = {}
        self.stack = contextlib.ExitStack()  # interventions stay on the workspace's models

    def state(self, job: ShardJob):
        key = job.fingerprint()
        if key not in self.opened:
            model_key = job.model.key()
            if model_key not in self.models:
                self.models[model_key] = job.model.load(self.stack)
            self.opened[key] = job.open(self.models[model_key])
        return self.opened[key]

    def run(self, job: ShardJob, indices: Sequence[int]) -> Partial:
        return job.run(self.state(job), indices)
