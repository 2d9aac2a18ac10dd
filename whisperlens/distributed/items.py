"""Per-item studies as shard jobs: a study function run on consecutive items (clips, word pairs)
of a list that every worker rebuilds from the corpus, its per-item scores concatenated in order.

The locality band sweep, the layers study's lens and layer removal, and the patching study's
override matrix score every clip (or pair) on its own, in batches: cut into shards of whole
batches, every batch is the one a single pass makes, so the concatenated scores are those of one
pass and the study's summary, computed from them on the driver, is too.

    class SweepJob(ItemsJob):          # a dataclass: corpus, corpus_key, model and the study's settings
        def items(self): return english_clips(self.opened_corpus())
        def score(self, model, clips, first, progress): return {"log_prob": ...}   # arrays, one row per clip

    columns = score_items(job, clips, config.batch_size, config.executor, context, "sweep", model=model)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import WhisperLensError
from .jobs import ModelRequest
from .runner import run_sharded, shard_ranges
from .spec import ExecutorSpec


@dataclass
class ItemScores:
    """Named arrays with one row per item (or per token of the items) of consecutive items; merged
    by concatenation, the earlier items first."""

    columns: dict[str, np.ndarray]

    def merge(self, later: ItemScores) -> ItemScores:
        if later.columns.keys() != self.columns.keys():
            raise ValueError(f"partials with different columns: {sorted(self.columns)} and {sorted(later.columns)}")
        return ItemScores({name: np.concatenate([values, later.columns[name]]) for name, values in self.columns.items()})

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.columns)


class ItemsJob:
    """A shard job over a list of items that a worker rebuilds from the corpus. Subclasses are
    dataclasses with the fields `corpus` (a CorpusSelection), `corpus_key` (its content key,
    computed on the driver) and `model` (a ModelRequest), and define

    - `items(self)`: the whole list, built on a worker once (`opened_corpus()` opens the corpus);
    - `score(self, model, items, first, progress)`: a dict of arrays, one row per item of `items`
      (or rows in item order, e.g. per token), for the items at `first`, `first + 1`, ... of the list.
      `progress` is a tqdm-like callable for a progress bar over batches, or None.

    The fingerprint covers every field, so two jobs with other settings never share state."""

    corpus: object
    corpus_key: str
    model: ModelRequest
    progress: Callable | None = None  # set on a local run only: a progress bar is no use on a Ray worker
    items_here: Sequence | None = None  # set on a local run only: the driver's own list, not rebuilt

    def items(self) -> Sequence:
        raise NotImplementedError

    def score(self, model, items: list, first: int, progress: Callable | None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def opened_corpus(self):
        """The corpus selection opened here, checked against the driver's (a worker on another node
        must see the same corpus at the same path)."""
        from ..corpus.selection import corpus_key

        corpus = self.corpus.open()
        if corpus_key(corpus) != self.corpus_key:
            raise WhisperLensError(f"{corpus.root}: the corpus here differs from the driver's (another build, or "
                                   "another selection); give every node the same corpus folder")
        return corpus

    def fingerprint(self) -> str:
        record = [type(self).__module__, type(self).__qualname__,
                  {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}]
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=_json_value).encode()).hexdigest()[:16]

    def open(self, model):
        return model, (self.items() if self.items_here is None else self.items_here)

    def run(self, state, indices: Sequence[int]) -> ItemScores:
        model, items = state
        return ItemScores(self.score(model, [items[i] for i in indices], indices[0], self.progress))

    def partial_from_arrays(self, arrays: dict) -> ItemScores:
        return ItemScores(dict(arrays))


def _json_value(value):
    """What a job's fields hold beside JSON values: dataclasses (settings), and torch modules or
    arrays (trained weights), fingerprinted by their bytes."""
    if dataclasses.is_dataclass(value):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if hasattr(value, "state_dict"):
        return {name: _json_value(tensor) for name, tensor in value.state_dict().items()}
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [str(value.dtype), list(value.shape), hashlib.sha256(value.tobytes()).hexdigest()]
    raise TypeError(f"a shard job's field holds a {type(value).__name__}, which has no fingerprint")


def score_items(job: ItemsJob, items: Sequence, batch_size: int, executor: ExecutorSpec, context, desc: str, *,
                model=None) -> dict[str, np.ndarray]:
    """The job's columns over `items` (the driver's list, which each Ray worker rebuilds with
    `job.items()`), in shards of `executor.shard_batches` batches of `batch_size` items, run here
    (`model`: the one loaded here) or on Ray, and concatenated in order. `context` is the study's:
    its progress bars, and its folder's `checkpoints/`, where the merged shards are saved as they
    come so that a rerun after an interruption starts at the next shard (the study runner removes
    the folder once the result is saved)."""
    shards = shard_ranges(len(items), batch_size * executor.shard_batches)
    checkpoint = context.checkpoint_path(f"shards-{_file_name(desc)}")
    if executor.is_ray:
        return run_sharded(job, shards, executor, checkpoint_path=checkpoint,
                           progress=context.show_progress and desc).columns
    local = dataclasses.replace(job)
    local.progress = context.progress if context.show_progress else None  # each shard shows its batches
    local.items_here = items
    return run_sharded(local, shards, executor, checkpoint_path=checkpoint, model=model).columns


def _file_name(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---- transcripts as columns: a decode's texts, tokens and token-limit flags, one row per clip ----


def transcript_columns(texts: Sequence[Sequence[str]], tokens: Sequence[Sequence[Sequence[int]]],
                       hit_limit: Sequence[Sequence[bool]], max_tokens: int) -> dict[str, np.ndarray]:
    """Transcripts of clips under several configurations ((configurations, clips) nested lists) as
    per-clip columns: texts (clips, configurations), tokens (clips, configurations, max_tokens),
    -1 after each transcript's end, and hit_limit (clips, configurations)."""
    n_configurations, n_clips = len(texts), len(texts[0]) if texts else 0
    padded = np.full((n_clips, n_configurations, max_tokens), -1, dtype=np.int32)
    for row, per_clip in enumerate(tokens):
        for clip, decoded in enumerate(per_clip):
            if len(decoded) > max_tokens:
                raise ValueError(f"a transcript of {len(decoded)} tokens, over the limit of {max_tokens}")
            padded[clip, row, : len(decoded)] = decoded
    return {"texts": np.array(texts, dtype=str).reshape(n_configurations, n_clips).T,
            "tokens": padded, "hit_limit": np.array(hit_limit, dtype=bool).reshape(n_configurations, n_clips).T}


def transcript_lists(columns: dict[str, np.ndarray]) -> tuple[list[list[str]], list[list[list[int]]], np.ndarray]:
    """`transcript_columns`' inverse: texts and tokens as (configurations, clips) nested lists, and
    hit_limit as a (configurations, clips) array."""
    texts = columns["texts"].T.tolist()
    tokens = [[[token for token in clip if token >= 0] for clip in row] for row in columns["tokens"].transpose(1, 0, 2).tolist()]
    return texts, tokens, columns["hit_limit"].T.copy()
