"""What the residual stream looks like to an SAE before training: outlier severity and the norm
of each encoder position.

    python -m whisperlens.sae.diagnostics [--corpus DIR] [--clips N] [--out DIR]

Per encoder block's `hook_resid_post` it prints ||mean|| / ||std|| (the outlier severity that
predicts dead latents when an SAE starts with b_dec = 0: ||std|| is the root of the summed
per-dimension variances, so the ratio compares the shared offset with the spread around it), the
mean norm, the largest |x| and its dimension, and the mean norm at each encoder position (do
fixed frames carry massive activations, like a language model's BOS token?). It writes
`diagnostics.json` and `norm_by_position.png` to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import WhisperLensError
from .train import MASSIVE_NORM_RATIO as MASSIVE


@dataclass
class HookMoments:
    """Running first and second moments of one hook's vectors, overall and per position."""

    d: int
    positions: int
    count: int = 0
    total: np.ndarray = field(init=False)
    total_squares: np.ndarray = field(init=False)
    max_abs: np.ndarray = field(init=False)
    norm_sum_by_position: np.ndarray = field(init=False)
    norm_max_by_position: np.ndarray = field(init=False)
    count_by_position: np.ndarray = field(init=False)
    norms: list[np.ndarray] = field(default_factory=list)
    norm_positions: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self):
        self.total = np.zeros(self.d)
        self.total_squares = np.zeros(self.d)
        self.max_abs = np.zeros(self.d)
        self.norm_sum_by_position = np.zeros(self.positions)
        self.norm_max_by_position = np.zeros(self.positions)
        self.count_by_position = np.zeros(self.positions, dtype=np.int64)

    def update(self, vectors: torch.Tensor, positions: np.ndarray) -> None:
        x = vectors.double()
        self.count += len(x)
        self.total += x.sum(0).numpy()
        self.total_squares += x.pow(2).sum(0).numpy()
        self.max_abs = np.maximum(self.max_abs, x.abs().amax(0).numpy())
        norms = x.norm(dim=1).numpy()
        self.norms.append(norms.astype(np.float32))
        self.norm_positions.append(np.asarray(positions, dtype=np.int16))
        np.add.at(self.norm_sum_by_position, positions, norms)
        np.maximum.at(self.norm_max_by_position, positions, norms)
        np.add.at(self.count_by_position, positions, 1)

    def summary(self) -> dict:
        mean = self.total / self.count
        variance = np.maximum(self.total_squares / self.count - mean**2, 0)
        mean_norm_by_position = self.norm_sum_by_position / np.maximum(self.count_by_position, 1)
        seen = self.count_by_position > 0
        median_position_norm = float(np.median(mean_norm_by_position[seen]))
        norms = np.concatenate(self.norms)
        median_norm = float(np.median(norms))
        massive = norms > MASSIVE * median_norm
        massive_by_position = np.bincount(np.concatenate(self.norm_positions)[massive], minlength=self.positions)
        loudest = int(np.argmax(np.where(seen, mean_norm_by_position, -np.inf)))
        return {
            "vectors": self.count,
            "mean_norm": float(mean_norm_by_position[seen] @ self.count_by_position[seen] / self.count),
            "norm_of_mean": float(np.linalg.norm(mean)),
            "norm_of_std": float(np.sqrt(variance.sum())),
            "outlier_severity": float(np.linalg.norm(mean) / np.sqrt(variance.sum())),
            "max_abs": float(self.max_abs.max()),
            "max_abs_dimension": int(self.max_abs.argmax()),
            "top_mean_dimensions": [[int(i), float(mean[i])] for i in np.argsort(-np.abs(mean))[:3]],
            "norm_quantiles": {q: float(np.quantile(norms, float(q))) for q in ("0.5", "0.99", "0.999", "1.0")},
            "massive_share": float(np.mean(massive)),
            "massive_share_by_position": (massive_by_position[seen] / self.count_by_position[seen]).tolist(),
            "median_position_norm": median_position_norm,
            "loudest_position": loudest,
            "loudest_position_ratio": float(mean_norm_by_position[loudest] / median_position_norm),
            "mean_norm_by_position": mean_norm_by_position[seen].tolist(),
            "max_norm_by_position": self.norm_max_by_position[seen].tolist(),
        }


def measure(corpus, model, hooks: list[str], mode: str = "short", indices=None, batch_size: int = 32,
            progress: bool = True) -> dict[str, dict]:
    """Outlier severity and norm by position of each hook over `corpus`."""
    from ..stream import ActivationStream

    positions = model.dims.n_audio_ctx
    moments: dict[str, HookMoments] = {}
    for batch in ActivationStream(model, corpus, hooks, mode=mode, batch_size=batch_size, indices=indices,
                                  progress=progress and "diagnostics"):
        for hook in hooks:
            vectors = batch.valid(hook)
            moments.setdefault(hook, HookMoments(vectors.shape[1], positions)).update(vectors, batch.rows(hook).positions)
    return {hook: moments[hook].summary() for hook in hooks}


def norm_by_position_figure(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..study.figures import save_figure

    figure, (axis, lower) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(2, 1))
    for hook, summary in results.items():
        label = hook.replace("encoder.blocks.", "block ").replace(".hook_resid_post", "")
        line, = axis.plot(summary["mean_norm_by_position"], label=f"{label} mean")
        axis.plot(summary["max_norm_by_position"], color=line.get_color(), alpha=0.35, linestyle=":")
        lower.plot(100 * np.asarray(summary["massive_share_by_position"]), color=line.get_color(), label=label)
    axis.set_ylabel("||x|| at hook_resid_post")
    axis.set_yscale("log")
    axis.set_title("Residual norm by encoder position (solid: mean, dotted: max)")
    axis.legend(fontsize=8)
    lower.set_xlabel("encoder position (20 ms frames)")
    lower.set_ylabel(f"% massive\n(> {MASSIVE}x median norm)")
    figure.tight_layout()
    save_figure(figure, path.parent, path.name)


def format_table(results: dict[str, dict]) -> str:
    lines = ["| hook | vectors | mean norm | norm of mean | norm of std | mean/std | max abs (dim) | norm p99.9 / max "
             f"| share > {MASSIVE}x median norm | loudest position (x median) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for hook, s in results.items():
        lines.append(f"| {hook} | {s['vectors']:,} | {s['mean_norm']:.1f} | {s['norm_of_mean']:.1f} | {s['norm_of_std']:.1f} "
                     f"| {s['outlier_severity']:.2f} | {s['max_abs']:.0f} ({s['max_abs_dimension']}) "
                     f"| {s['norm_quantiles']['0.999']:.0f} / {s['norm_quantiles']['1.0']:.0f} | {100 * s['massive_share']:.2f}% "
                     f"| {s['loudest_position']} ({s['loudest_position_ratio']:.2f}x) |")
    for hook, s in results.items():
        share = np.asarray(s["massive_share_by_position"])
        if share.any():
            top = np.argsort(-share)[:8]
            lines.append(f"\n{hook}: massive frames at positions " + ", ".join(f"{p} ({100 * share[p]:.0f}%)" for p in top)
                         + f"; {(share > 0.01).sum()} of {len(share)} positions have more than 1%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisperlens.sae.diagnostics", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus)")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--clips", type=int, default=2000, help="clips measured, a seeded sample of the corpus (0: all)")
    parser.add_argument("--mode", default="short", choices=("short", "exact"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/sae-diagnostics", help="folder for diagnostics.json and norm_by_position.png")
    args = parser.parse_args(argv)
    try:
        from .. import load_model
        from ..corpus import Corpus

        corpus = Corpus.open(args.corpus)
        indices = None
        if 0 < args.clips < len(corpus):
            indices = np.sort(np.random.default_rng(args.seed).choice(len(corpus), args.clips, replace=False)).tolist()
        model = load_model(args.model)
        hooks = [f"encoder.blocks.{layer}.hook_resid_post" for layer in range(model.dims.n_audio_layer)]
        results = measure(corpus, model, hooks, args.mode, indices)
    except WhisperLensError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnostics.json").write_text(json.dumps(results, indent=1))
    norm_by_position_figure(results, out / "norm_by_position.png")
    print(format_table(results))
    print(f"wrote {out / 'diagnostics.json'} and {out / 'norm_by_position.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
