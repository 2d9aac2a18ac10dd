"""The decoder logit lens, teacher-forced on reference transcripts: the residual stream at every
sub-layer point read out through the final LayerNorm and the tied unembedding (the cache's
`logits_from_resid`), and compared with the model's own prediction and with the reference token.

Points, for decoder block i: `i pre` (block 0 only: the embedding), `i mid` (after
self-attention), `i mid_cross` (after cross-attention) and `i post` (after the MLP), which is
block i + 1's `pre`; the last `post` is the model's own final residual stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...hooks import ActivationCache
from ...stream import ActivationStream

BLOCK_POINTS = ("pre", "mid", "mid_cross")  # the points of each decoder block the lens reads, in order


def lens_hooks(n_layers: int) -> list[str]:
    """What `accumulated_resid("decoder", incl_mid=True)` reads: each block's input and middle
    points, and the last block's output."""
    names = []
    for i in range(n_layers):
        names += [f"decoder.blocks.{i}.hook_resid_{point}" for point in BLOCK_POINTS]
    return names + [f"decoder.blocks.{n_layers - 1}.hook_resid_post"]


def point_label(label: str, n_layers: int) -> str:
    """accumulated_resid's label as a sub-layer of the issue's naming: '2_pre' is '1 post'."""
    if label == "final_post":
        return f"{n_layers - 1} post"
    index, point = label.split("_", 1)
    if point == "pre" and index != "0":
        return f"{int(index) - 1} post"
    return f"{index} {point}"


def cache_of(model, activations: dict[str, torch.Tensor]) -> ActivationCache:
    """A stream batch's activations as an ActivationCache, for its residual-stream helpers."""
    cache = ActivationCache(model)
    for name, activation in activations.items():
        cache.record(model.hook_dict[name], activation)
    return cache


@dataclass
class LensResult:
    labels: list[str]  # one per point: "0 pre", "0 mid", "0 mid_cross", "0 post", ...
    depth: np.ndarray  # (points,) fraction of the decoder's sub-layers before each point
    kl: np.ndarray  # (points, tokens) KL(final || lens) in nats
    agrees: np.ndarray  # (points, tokens) the lens's top token is the model's own
    rank: np.ndarray  # (points, tokens) the reference token's rank under the lens (1: top)
    probability: np.ndarray  # (points, tokens) the reference token's probability under the lens
    top_tokens: np.ndarray  # (points, tokens) the lens's top token
    targets: np.ndarray  # (tokens,) the reference token predicted at each position
    clip_of_token: np.ndarray  # (tokens,) which clip (index into the clips given) each token is from
    tuned_kl: np.ndarray | None = None  # (points, tokens) KL(final || tuned lens), when translators were given
    tuned_agrees: np.ndarray | None = None  # (points, tokens) the tuned lens's top token is the model's own


@dataclass
class PointVectors:
    """One batch of teacher-forced clips: the residual stream at every lens point, at each
    position that predicts a transcript token or the end-of-text."""

    cache: ActivationCache  # the batch's activations; its logits_from_resid is the lens's readout
    labels: list[str]  # accumulated_resid's label of each point
    vectors: torch.Tensor  # (points, rows, d)
    targets: torch.Tensor  # (rows,) the reference token each row predicts
    clip_of_row: torch.Tensor  # (rows,) each row's clip, an index into the clips given


def point_vectors(model, clips: Sequence, batch_size: int, progress: bool | str = False) -> Iterator[PointVectors]:
    """Teacher-force every clip's reference transcript (30 s exact mode, as each clip alone) and
    give each batch's residual vectors at every point."""
    stream = ActivationStream(model, list(clips), lens_hooks(model.dims.n_text_layer), mode="exact",
                              batch_size=batch_size, teacher_forcing=True, progress=progress)
    prompt = len(stream.tokenizer.sot_sequence_including_notimestamps)
    for batch in stream:
        cache = cache_of(model, batch.activations)
        resid, labels = cache.accumulated_resid("decoder", incl_mid=True)  # (points, clips, T, d)
        # Position p predicts token p + 1: from the prompt's last token to the last text token.
        rows = [(b, p) for b, n in enumerate(batch.token_lengths) for p in range(prompt - 1, n - 1)]
        clip_rows, positions = (torch.tensor(axis) for axis in zip(*rows))
        vectors = resid[:, clip_rows, positions]
        yield PointVectors(cache, labels, vectors, batch.tokens[clip_rows, positions + 1].to(vectors.device),
                           torch.as_tensor(batch.clip_indices)[clip_rows])


def point_metrics(cache: ActivationCache, resid: torch.Tensor, final_log_probs: torch.Tensor,
                  targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The lens at one point: resid (rows, d) -> per-row KL to the final distribution, top-1
    agreement, rank and probability of the target."""
    log_probs = cache.logits_from_resid(resid).float().log_softmax(-1)
    target_log_probs = log_probs.gather(-1, targets[:, None])
    top = log_probs.argmax(-1)
    return {
        "kl": (final_log_probs.exp() * (final_log_probs - log_probs)).sum(-1),
        "agrees": top == final_log_probs.argmax(-1),
        "rank": (log_probs > target_log_probs).sum(-1) + 1,
        "probability": target_log_probs[:, 0].exp(),
        "top_tokens": top,
    }


TUNED_METRICS = ("kl", "agrees")  # what the tuned lens reports beside the logit lens


def run_lens(model, clips: Sequence, batch_size: int, progress=False, translators=None) -> LensResult:
    """Read the logit lens at every point of every teacher-forced clip and, given translators
    (tuned.Translators), the tuned lens too."""
    return lens_result(lens_columns(model, clips, batch_size, progress, translators), model.dims.n_text_layer)


LENS_COLUMNS = ("kl", "agrees", "rank", "probability", "top_tokens", "tuned_kl", "tuned_agrees")  # (tokens, points)


def lens_columns(model, clips: Sequence, batch_size: int, progress=False, translators=None,
                 first: int = 0) -> dict[str, np.ndarray]:
    """The lens's readings, one row per token in clip order (the columns `lens_result` puts
    together): each metric (tokens, points), the target token and its clip's index (`first` for
    the first of `clips`), so that the readings of consecutive clips concatenate."""
    parts: dict[str, list[torch.Tensor]] = {}
    targets, clip_of_token, n_points = [], [], 0
    for batch in point_vectors(model, clips, batch_size, progress and "logit lens"):
        n_points = len(batch.labels)
        with torch.inference_mode():
            final = batch.cache.logits_from_resid(batch.vectors[-1]).float().log_softmax(-1)
            for k, resid in enumerate(batch.vectors):
                for name, value in point_metrics(batch.cache, resid, final, batch.targets).items():
                    parts.setdefault(name, []).append(value.cpu())
                if translators is not None:
                    tuned = point_metrics(batch.cache, translators(k, resid), final, batch.targets)
                    for name in TUNED_METRICS:
                        parts.setdefault(f"tuned_{name}", []).append(tuned[name].cpu())
        targets.append(batch.targets.cpu())
        clip_of_token.append(batch.clip_of_row + first)
    # the batches' (rows,) pieces, point by point -> (tokens, points)
    columns = {name: torch.stack([torch.cat(pieces[k::n_points]) for k in range(n_points)], 1).numpy()
               for name, pieces in parts.items()}
    dtypes = {"kl": np.float32, "rank": np.int32, "probability": np.float32, "top_tokens": np.int32, "tuned_kl": np.float32}
    columns = {name: values.astype(dtypes[name]) if name in dtypes else values for name, values in columns.items()}
    return {**columns, "targets": torch.cat(targets).numpy().astype(np.int32),
            "clip_of_token": torch.cat(clip_of_token).numpy().astype(np.int32)}


def lens_result(columns: dict[str, np.ndarray], n_layers: int) -> LensResult:
    """The LensResult of `lens_columns`' readings (of one pass, or of shards concatenated)."""
    n_points = columns["kl"].shape[1]
    labels = [f"{i}_{point}" for i in range(n_layers) for point in BLOCK_POINTS] + ["final_post"]
    assert len(labels) == n_points, (labels, n_points)  # accumulated_resid's labels, as lens_hooks reads them
    metrics = {name: np.ascontiguousarray(columns[name].T) if name in columns else None for name in LENS_COLUMNS}
    return LensResult([point_label(label, n_layers) for label in labels], np.arange(n_points) / (n_points - 1),
                      targets=columns["targets"], clip_of_token=columns["clip_of_token"], **metrics)


def summarise_points(lens: LensResult) -> list[dict]:
    """Per point: the means over every token (the median for the rank), the tuned lens's too when trained."""
    points = [{"point": label, "depth": round(float(depth), 4),
               "top1_agreement": round(float(lens.agrees[k].mean()), 4),
               "kl": round(float(lens.kl[k].mean()), 4),
               "top1_accuracy": round(float((lens.rank[k] == 1).mean()), 4),
               "median_rank": float(np.median(lens.rank[k])),
               "p_correct": round(float(lens.probability[k].mean()), 4)}
              for k, (label, depth) in enumerate(zip(lens.labels, lens.depth))]
    if lens.tuned_kl is not None:
        for k, point in enumerate(points):
            point["tuned_kl"] = round(float(lens.tuned_kl[k].mean()), 4)
            point["tuned_top1_agreement"] = round(float(lens.tuned_agrees[k].mean()), 4)
    return points


def token_examples(lens: LensResult, tokenizer, clip_ids: Sequence[str], n_clips: int) -> list[dict]:
    """The first clips token by token: the reference token, and the lens's top token at the input
    of each block and at the output (the block boundaries; the middle points would crowd it)."""
    boundaries = [k for k, label in enumerate(lens.labels) if label.endswith(("post", "0 pre"))]
    examples = []
    for clip in range(min(n_clips, len(clip_ids))):
        tokens = np.flatnonzero(lens.clip_of_token == clip)
        rows = [[tokenizer.decode([int(lens.targets[t])])] + [tokenizer.decode([int(lens.top_tokens[k, t])]) for k in boundaries]
                for t in tokens]
        examples.append({"clip": clip_ids[clip], "points": [lens.labels[k] for k in boundaries], "rows": rows})
    return examples
