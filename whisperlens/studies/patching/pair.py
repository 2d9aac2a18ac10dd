"""`whisperlens patching pair A.wav B.wav`: any two recordings, A's encoder states patched into B's
run at each layer and in windows of positions; the layer x position heatmap of the normalised
logit difference between A's and B's first distinguishing token."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_OUT = Path("runs") / "patching-pair"


def add_commands(actions) -> None:
    # argparse's own formatter: the study parsers' (simple_parsing's) names metavars after the
    # default's type, which reads "--text-a None" here, and repeats defaults the help already gives
    pair = actions.add_parser("pair", help="patch recording A into recording B: a layer x position heatmap",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    pair.add_argument("a", metavar="A.wav", help="recording A (the clean run: its states are patched in)")
    pair.add_argument("b", metavar="B.wav", help="recording B (the corrupted run)")
    pair.add_argument("--text-a", default=None, metavar="TEXT", help="A's transcript (default: the model's own)")
    pair.add_argument("--text-b", default=None, metavar="TEXT", help="B's transcript (default: the model's own)")
    pair.add_argument("--model", default="tiny.en", metavar="MODEL", help="bundled name or checkpoint path (default tiny.en)")
    pair.add_argument("--device", default="cpu", metavar="DEVICE", help="cpu, cuda, ... (default cpu)")
    pair.add_argument("--language", default="en", metavar="LANG", help="the language token on a multilingual model (default en)")
    pair.add_argument("--component", default="resid_post", metavar="COMPONENT",
                      help="what is patched (default resid_post; see docs)")
    pair.add_argument("--window", type=int, default=5, metavar="N", help="positions patched together (20 ms each; default 5)")
    pair.add_argument("--direction", default="denoise", choices=("denoise", "noise"),
                      help="denoise: A into B's run (default); noise: B into A's run")
    pair.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                      help=f"folder for the heatmap (default {DEFAULT_OUT})")
    pair.set_defaults(run=run_pair)


def run_pair(args) -> int:
    from ...audio import encoder_positions, load_audio, log_mel_batch
    from ...devices import check_device
    from ...errors import WhisperLensError
    from ...models.loading import load_model
    from ...patching import COMPONENTS, PatchPairs, activation_patching
    from ...study import Table, blocks_as_text

    if not 1 <= args.window <= 100:
        raise WhisperLensError(f"--window must lie in 1-100 positions, got {args.window}")
    if args.component not in COMPONENTS or args.component.startswith("cross"):
        raise WhisperLensError(f"--component is an encoder component ({', '.join(c for c in COMPONENTS if 'cross' not in c)}), "
                               f"not {args.component!r}")
    audio_a, audio_b = load_audio(args.a), load_audio(args.b)
    check_device(args.device)
    model = load_model(args.model, device=args.device)
    texts = [args.text_a, args.text_b]
    if None in texts:
        heard = transcribe(model, log_mel_batch([audio_a, audio_b], model.dims.n_mels), args.language)
        texts = [given if given is not None else own for given, own in zip(texts, heard, strict=True)]
    pairs = PatchPairs.from_audio(model, [audio_a], [audio_b], texts[:1], texts[1:], languages=[args.language])
    span = max(encoder_positions(len(audio_a)), encoder_positions(len(audio_b)))
    windows = {f"{20 * start}": range(start, min(start + args.window, span)) for start in range(0, span, args.window)}
    windows["all"] = None
    result = activation_patching(model, pairs, args.component, positions=windows, direction=args.direction)
    grid = result.normalised().mean("pair")
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"{args.model}: {args.component} of {Path(args.a).name} into {Path(args.b).name}"
    grid.heatmap(args.out, "pair.png", title=title, vmin=-1, vmax=1, label="normalised logit difference")
    header, rows = grid.rows()
    record = {"a": str(args.a), "b": str(args.b), "texts": texts, "model": args.model, "component": args.component,
              "direction": args.direction, "window_ms": 20 * args.window,
              "clean_logit_diff": float(result.metrics.clean["logit_diff"][0]),
              "corrupt_logit_diff": float(result.metrics.corrupt["logit_diff"][0]), "header": header, "rows": rows}
    (args.out / "pair.json").write_text(json.dumps(record, indent=2) + "\n")
    gap = record["clean_logit_diff"] - record["corrupt_logit_diff"]
    print(f"A: {texts[0]!r}   B: {texts[1]!r}   logit difference A {record['clean_logit_diff']:.2f}, "
          f"B {record['corrupt_logit_diff']:.2f}" + ("  (B's run prefers A's token: the normalisation is unreliable)"
                                                     if gap <= 0 else ""))
    print(blocks_as_text([Table(header, rows, caption="normalised logit difference; columns: window start (ms)")]))
    print(f"\nheatmap: {args.out / 'pair.png'}")
    return 0


def transcribe(model, mels, language: str) -> list[str]:
    """The model's greedy transcripts of the two recordings."""
    import torch
    import whisper

    options = whisper.DecodingOptions(language=language, without_timestamps=True, fp16=False, temperature=0.0)
    with torch.no_grad():
        return [result.text.strip() for result in whisper.decode(model, mels.to(model.device), options)]
