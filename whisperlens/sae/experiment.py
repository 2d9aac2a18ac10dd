"""Train one SAE on an encoder block's residual stream, as the features study does, and measure
it: the command behind the SAE figures in docs/features.md.

    python -m whisperlens.sae.experiment --block 2 [--architecture batchtopk] [--training-vectors N] ...

The block's `hook_resid_post` vectors over the whole corpus (short mode) are collected once and
cached under --cache; training flags are SAETrainingConfig's fields. Writes `metrics.json`
(metrics, config, wall and CPU seconds of training, load average), `firing_frequency.png` and
the SAE (`sae/`) to --out and prints one summary line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

from ..errors import WhisperLensError
from .train import SAETrainingConfig, train_sae

MAX_VECTORS = 2_000_000  # more than the default corpus's ~1.14M frames: every frame


def block_activations(blocks: list[int], corpus_dir: str | None, cache: Path, model_name: str) -> dict[int, torch.Tensor]:
    """Every frame's `encoder.blocks.B.hook_resid_post` vector for each of `blocks`, cached on disk
    (the blocks not cached yet are collected in one pass)."""
    from .. import load_model
    from ..corpus import Corpus
    from ..corpus.selection import corpus_key
    from ..features.harvest import collect_activations

    corpus = Corpus.open(corpus_dir)
    paths = {block: cache / f"{model_name}-{corpus_key(corpus)[:12]}-block{block}.pt" for block in blocks}
    missing = [block for block in blocks if not paths[block].exists()]
    if missing:
        hooks = {block: f"encoder.blocks.{block}.hook_resid_post" for block in missing}
        collected = collect_activations(corpus, load_model(model_name), list(hooks.values()), "short", MAX_VECTORS)
        cache.mkdir(parents=True, exist_ok=True)
        for block, hook in hooks.items():
            torch.save(collected[hook], paths[block].with_suffix(".tmp"))
            os.replace(paths[block].with_suffix(".tmp"), paths[block])
    return {block: torch.load(paths[block]) for block in blocks}


def firing_frequency_figure(histogram: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..study.figures import save_figure

    edges, counts = histogram["log10_bin_edges"], histogram["live_counts"]
    figure, axis = plt.subplots(figsize=(6, 3.2))
    axis.bar(edges[:-1], counts, width=[b - a for a, b in zip(edges, edges[1:])], align="edge", edgecolor="black")
    axis.bar([edges[0] - 0.75], [histogram["dead"]], width=0.5, color="tab:red", label=f"dead: {histogram['dead']}")
    for left, count in zip(edges, counts):
        if count:
            axis.annotate(str(count), (left + 0.25, count), ha="center", va="bottom", fontsize=7)
    axis.set_xlabel("log10 firing frequency on held-out frames")
    axis.set_ylabel("latents")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path.parent, path.name)


def config_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m whisperlens.sae.experiment", description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, required=True)
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus)")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--cache", default="runs/sae-activations", help="folder for the collected vectors")
    parser.add_argument("--out", default=None,
                        help="folder for metrics.json and firing_frequency.png (default runs/sae-experiments/NAME)")
    for spec in dataclasses.fields(SAETrainingConfig):
        if spec.name in ("hook", "model_name"):
            continue
        flag = "--" + spec.name.replace("_", "-")
        if spec.type in ("bool", bool):
            parser.add_argument(flag, type=lambda text: text.lower() in ("1", "true", "yes"), default=spec.default)
        else:
            parser.add_argument(flag, type=type(spec.default), default=spec.default)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = config_parser().parse_args(argv)
    hook = f"encoder.blocks.{args.block}.hook_resid_post"
    fields = {spec.name for spec in dataclasses.fields(SAETrainingConfig)} - {"hook", "model_name"}
    config = SAETrainingConfig(hook=hook, model_name=args.model, **{name: getattr(args, name) for name in fields})
    try:
        config.validate()
        vectors = block_activations([args.block], args.corpus, Path(args.cache), args.model)[args.block]
        started, cpu_started = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        result = train_sae(vectors, config)
        seconds, cpu = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    except WhisperLensError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    name = (f"block{args.block}-{config.architecture}-k{config.k}-x{config.expansion}-b{config.batch_size}"
            f"-n{config.training_vectors}")
    out = Path(args.out or Path("runs/sae-experiments") / name)
    out.mkdir(parents=True, exist_ok=True)
    record = {"metrics": result.metrics, "config": dataclasses.asdict(config), "vectors": len(vectors),
              "training_wall_seconds": seconds,
              "training_cpu_seconds": cpu.ru_utime + cpu.ru_stime - cpu_started.ru_utime - cpu_started.ru_stime,
              "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()}
    (out / "metrics.json").write_text(json.dumps(record, indent=1))
    result.save(out / "sae")
    metrics = result.metrics
    firing_frequency_figure(metrics["firing_frequency"], f"{hook}, {config.architecture} k={config.k}: "
                            f"{metrics['dead_features']} of {metrics['d_sae']} dead over {metrics['eval_vectors']:,} frames",
                            out / "firing_frequency.png")
    print(f"{name}: EV {metrics['explained_variance']:.3f}, L0 {metrics['l0']:.1f}, dead {metrics['dead_features']} of "
          f"{metrics['d_sae']} ({100 * metrics['dead_features'] / metrics['d_sae']:.1f}%) over {metrics['eval_vectors']:,} "
          f"held-out frames; AuxK active {metrics['auxk_steps']} of {metrics['steps']} steps (window "
          f"{metrics['auxk_dead_window_steps']} steps); training {seconds:.0f} s wall, {record['training_cpu_seconds']:.0f} s "
          f"CPU, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
