"""One pass of the corpus through a model, by the shared ActivationStream: each clip's activations
mean-pooled over its valid positions at every site, and a bounded, seeded sample of frames per
label, with the log-mel of the same clips and frames for the control tasks' acoustic clusters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...stream import ActivationStream
from .tasks import frame_sample_label

EMBED_HOOK = "encoder.hook_embed"


def sites(model) -> list[str]:
    """The lower baselines, then every encoder layer: conv (the convolutions' output, before the
    positional embedding is added), embed (the input to layer 0) and layer 0..n-1 (each block's
    residual output)."""
    return ["conv", "embed"] + [f"layer {i}" for i in range(model.dims.n_audio_layer)]


def _hook(site: str) -> str:
    if site in ("conv", "embed"):  # the stream refuses encoder.hook_conv2, laid out (batch, channel, position)
        return EMBED_HOOK
    return f"encoder.blocks.{site.removeprefix('layer ')}.hook_resid_post"


class FrameSample:
    """At most `per_class` frames of each label: those with the smallest seeded random keys, which
    makes it a uniform sample without replacement within each label, whatever the batch order.
    It never holds more than per_class frames of a label, plus one batch."""

    def __init__(self, per_class: int):
        self.per_class = per_class
        self.columns: dict[str, np.ndarray] = {}

    def offer(self, keys: np.ndarray, labels: np.ndarray, **columns: np.ndarray) -> None:
        candidate = {"key": keys, "label": labels, **columns}
        candidate = _take(candidate, self._smallest_keys(keys, labels))  # a batch gives at most per_class a label
        self.columns = candidate if not self.columns else {
            name: np.concatenate([self.columns[name], candidate[name]]) for name in self.columns}
        self.columns = _take(self.columns, self._smallest_keys(self.columns["key"], self.columns["label"]))

    def _smallest_keys(self, keys: np.ndarray, labels: np.ndarray) -> np.ndarray:
        kept = [rows[np.argsort(keys[rows], kind="stable")[: self.per_class]]
                for label in np.unique(labels) for rows in [np.flatnonzero(labels == label)]]
        return np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.columns.get("key", ()))

    @classmethod
    def of(cls, columns: dict[str, np.ndarray], per_class: int) -> FrameSample:
        sample = cls(per_class)
        sample.columns = dict(columns)
        return sample

    def merge(self, later: FrameSample) -> FrameSample:
        """The sample of this one's frames and then `later`'s: what one pass over both keeps."""
        merged = FrameSample.of(self.columns, self.per_class)
        if len(later):
            columns = dict(later.columns)
            merged.offer(columns.pop("key"), columns.pop("label"), **columns)
        return merged


def _take(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in columns.items()}


@dataclass
class Collected:
    """What one model gives over the selected clips, in stream order."""

    sites: list[str]
    clip_indices: np.ndarray  # (clips,) corpus indices
    pooled: dict[str, np.ndarray]  # site -> (clips, d): mean over each clip's valid positions
    pooled_mel: np.ndarray  # (clips, n_mels): the same mean of the log-mel, per encoder position
    frames: dict[str, np.ndarray]  # the frame sample: key, label, clip (corpus index), position, mel, and one column per site
    positions: list[int]  # the distinct numbers of valid positions per clip
    padded_clips: int  # clips whose batch held a longer clip (their attention saw padding positions)
    frames_per_class: int = 0  # the frame sample's bound per label

    def merge(self, later: Collected) -> Collected:
        """This one's clips, then `later`'s (consecutive shards of one stream order)."""
        sample = FrameSample.of(self.frames, self.frames_per_class).merge(FrameSample.of(later.frames, self.frames_per_class))
        return Collected(self.sites, np.concatenate([self.clip_indices, later.clip_indices]),
                         {site: np.concatenate([self.pooled[site], later.pooled[site]]) for site in self.sites},
                         np.concatenate([self.pooled_mel, later.pooled_mel]), sample.columns,
                         sorted(set(self.positions) | set(later.positions)), self.padded_clips + later.padded_clips,
                         self.frames_per_class)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"sites": np.array(self.sites), "clip_indices": self.clip_indices, "pooled_mel": self.pooled_mel,
                "positions": np.array(self.positions, dtype=np.int64), "padded_clips": np.array(self.padded_clips),
                "frames_per_class": np.array(self.frames_per_class),
                **{f"pooled/{site}": values for site, values in self.pooled.items()},
                **{f"frames/{name}": values for name, values in self.frames.items()}}

    @classmethod
    def from_arrays(cls, arrays: dict) -> Collected:
        def group(prefix: str) -> dict[str, np.ndarray]:
            return {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith(prefix)}

        return cls([str(site) for site in arrays["sites"].tolist()], arrays["clip_indices"], group("pooled/"),
                   arrays["pooled_mel"], group("frames/"), [int(n) for n in arrays["positions"]],
                   int(arrays["padded_clips"]), int(arrays["frames_per_class"]))


def collect(model, corpus, indices: list[int], frame_clips: set[int], frames_per_class: int, seed: int,
            batch_size: int, progress: bool | str = False, first_frame: int = 0) -> Collected:
    """Stream corpus[indices] through `model` once. Frames are sampled from the clips in
    `frame_clips` (corpus indices); the keys that choose them follow `seed` in stream order, so
    two models given the same arguments keep the same frames. `first_frame`: how many frames
    the stream held before indices[0], when these clips are a shard of a longer stream (the
    keys are drawn on from there, so the shards' merge equals one pass)."""
    from ...audio import log_mel_batch

    names = sites(model)
    stream = ActivationStream(model, corpus, sorted({_hook(site) for site in names}), indices=indices,
                              batch_size=batch_size, progress=progress)
    position_embedding = model.encoder.positional_embedding.float().cpu().numpy()
    keys = np.random.default_rng(seed)
    keys.bit_generator.advance(first_frame)  # a uniform double is one 64-bit draw: skip the earlier frames' keys
    sample = FrameSample(frames_per_class)
    pooled: dict[str, list[np.ndarray]] = {site: [] for site in names}
    pooled_mel, positions, padded = [], set(), 0
    for batch in stream:
        rows = batch.rows(EMBED_HOOK)
        starts, lengths = rows.offsets[:-1], np.diff(rows.offsets)
        positions.update(batch.lengths)
        padded += sum(n < max(batch.lengths) for n in batch.lengths)
        values = {site: batch.valid(_hook(site)).float().cpu().numpy() for site in names if site != "conv"}
        values["conv"] = values["embed"] - position_embedding[rows.positions]
        mel = _frame_mels(log_mel_batch([np.asarray(clip.audio, np.float32) for clip in batch.clips],
                                        model.dims.n_mels, short=True).numpy(), batch.lengths)
        for site in names:
            pooled[site].append(np.add.reduceat(values[site], starts) / lengths[:, None])
        pooled_mel.append(np.add.reduceat(mel, starts) / lengths[:, None])
        labels = [frame_sample_label(clip, phone) if index in frame_clips else None
                  for index, clip, phones in zip(batch.clip_indices.tolist(), batch.clips, batch.frame_phones, strict=True)
                  for phone in phones]
        frame_keys = keys.random(len(labels))  # drawn for every frame, so the draw does not depend on labels
        chosen = np.flatnonzero([label is not None for label in labels])
        if len(chosen):
            sample.offer(frame_keys[chosen], np.array([labels[i] for i in chosen]), clip=rows.clips[chosen],
                         position=rows.positions[chosen], mel=mel[chosen],
                         **{f"site:{site}": values[site][chosen] for site in names})
    return Collected(names, np.asarray(indices, dtype=np.int64),
                     {site: np.concatenate(parts).astype(np.float32) for site, parts in pooled.items()},
                     np.concatenate(pooled_mel).astype(np.float32), sample.columns, sorted(positions), int(padded),
                     frames_per_class)


def _frame_mels(mel: np.ndarray, lengths: list[int]) -> np.ndarray:
    """(clips, n_mels, mel frames) -> (valid positions, n_mels): the two 10 ms mel frames under
    each 20 ms encoder position, averaged, for each clip's valid positions in turn."""
    clips, n_mels, _ = mel.shape
    longest = max(lengths)
    per_position = mel[:, :, : 2 * longest].reshape(clips, n_mels, longest, 2).mean(axis=-1).transpose(0, 2, 1)
    return np.concatenate([per_position[row, :n] for row, n in enumerate(lengths)])
