"""How close short-clip encoder mode's activations are to exact (30 s padded) mode's.

Usage: .venv/bin/python benchmarks/short_mode_fidelity.py [--model tiny.en] [--seconds 2]
Prints, per hook, the Pearson correlation between exact and short activations over the
frames that cover the clip, for 2 s clips of speech synthesized with flite (kal16).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile

import numpy as np
import torch

import whisperlens
from whisperlens.audio import SAMPLE_RATE, encoder_positions, load_audio, log_mel

SENTENCES = [
    "She bought seven apples and three large oranges.",
    "Please put the red cups back on the kitchen shelf.",
    "It will rain in the morning and clear up by noon.",
    "The quick brown fox jumps over the lazy dog.",
    "A big ship sailed through the narrow channel.",
    "Judge the shiny chair by its thick wooden legs.",
    "Few voices rise over the humming engine.",
    "My brother plays the violin every Thursday.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    model = whisperlens.load_model(args.model)
    n_layers = model.dims.n_audio_layer
    names = ["encoder.hook_embed"]
    names += [f"encoder.blocks.{i}.{h}" for i in range(n_layers) for h in ("hook_resid_post", "mlp.hook_post")]
    exact_acts = {n: [] for n in names}
    short_acts = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(SENTENCES):
            path = f"{tmp}/{i}.wav"
            subprocess.run(["flite", "-voice", "kal16", "-t", text, "-o", path], check=True)
            clip = load_audio(path)[: int(args.seconds * SAMPLE_RATE)]
            n_frames = encoder_positions(len(clip))
            with torch.no_grad():
                _, exact = model.run_with_cache(log_mel(clip), names_filter=names)
                _, short = model.run_with_cache(log_mel(clip, short=True), names_filter=names, short_audio=True)
            for n in names:
                exact_acts[n].append(exact[n][0, :n_frames].flatten().numpy())
                short_acts[n].append(short[n][0, :n_frames].flatten().numpy())
    print(f"model {args.model}, {len(SENTENCES)} clips of {args.seconds:g} s (flite kal16)")
    print(f"{'hook':36} {'corr':>6} {'rel. err':>9}")
    for n in names:
        a, b = np.concatenate(exact_acts[n]), np.concatenate(short_acts[n])
        relative_error = np.linalg.norm(a - b) / np.linalg.norm(a)
        print(f"{n:36} {np.corrcoef(a, b)[0, 1]:6.3f} {relative_error:9.3f}")


if __name__ == "__main__":
    main()
