"""Feature-harvest throughput: our harvest in each mode, the naive method of the published
code, and the compute-bound limit of this machine.

The job: the top-k max-activating examples of every encoder MLP neuron (hook `mlp.1`, the
GELU output) over the corpus's first N English clips.

- harvest MODE: `whisperlens.features.harvest` (batched, fused statistics; it also keeps
  histograms, band samples and phone counts, more than the job needs);
- naive: what the published code did: openai-whisper's plain `Whisper` built from the same
  checkpoint, torch forward hooks on `encoder.blocks[i].mlp[1]`, one clip at a time padded to
  30 s, and a Python loop over neurons keeping each one's top-k;
- limit: the encoder's FLOPs per clip in short mode divided by the machine's best measured
  matmul throughput (float32, and bfloat16 for the bf16 mode).

    python benchmarks/bench_features.py --corpus DIR [--clips 500] [--naive-clips 16] [--exact-clips 64]
"""

from __future__ import annotations

import argparse
import heapq
import time

import torch


def matmul_throughput(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s over several square matmuls (after a warm-up)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def encoder_flops(dims, positions: int) -> float:
    """Multiply-adds x 2 of the encoder on `positions` positions (2 * positions mel frames)."""
    d, n_mels, layers = dims.n_audio_state, dims.n_mels, dims.n_audio_layer
    convs = 2 * (n_mels * d * 3 * 2 * positions + d * d * 3 * positions)
    per_layer = 2 * positions * (4 * d * d + 2 * 4 * d * d) + 2 * 2 * positions * positions * d
    return convs + layers * per_layer


def time_harvest(corpus, mode: str, clips: int, batch_size: int) -> float:
    from whisperlens.features.harvest import HarvestConfig, Harvester, model_for_mode

    config = HarvestConfig(hooks=("encoder.blocks.*.mlp.hook_post",), bases=("neurons",), mode=mode,
                           batch_size=batch_size, top_k=32)
    model = model_for_mode(config.model, mode, "cpu")
    Harvester(corpus[:batch_size], config, model).run(progress=False)  # warm-up: numba, oneDNN kernels
    result = Harvester(corpus[:clips], config, model).run(progress=False)
    return result.clips_per_second


def time_naive(corpus, clips: int, k: int = 32) -> float:
    """One clip at a time through openai-whisper's own model, 30 s padding, Python top-k."""
    import whisper.audio
    from whisper.model import ModelDimensions, Whisper

    from whisperlens.audio import encoder_positions
    from whisperlens.models.loading import load_checkpoint

    checkpoint = load_checkpoint("tiny.en")
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])
    model.eval()
    captured = {}
    for i, block in enumerate(model.encoder.blocks):
        block.mlp[1].register_forward_hook(lambda module, inputs, output, i=i: captured.__setitem__(i, output))
    heaps = [[[] for _ in range(4 * checkpoint["dims"]["n_audio_state"])] for _ in model.encoder.blocks]
    start = time.perf_counter()
    for clip_index in range(clips):
        audio = corpus[clip_index].audio
        mel = whisper.audio.log_mel_spectrogram(whisper.audio.pad_or_trim(torch.as_tensor(audio)))
        with torch.no_grad():
            model.encoder(mel.unsqueeze(0))
        n = encoder_positions(len(audio))
        for layer, activation in captured.items():
            values = activation[0, :n].numpy()
            for neuron, heap in enumerate(heaps[layer]):
                frame = int(values[:, neuron].argmax())
                item = (float(values[frame, neuron]), -clip_index, frame)
                if len(heap) < k:
                    heapq.heappush(heap, item)
                else:
                    heapq.heappushpop(heap, item)
    return clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus)")
    parser.add_argument("--clips", type=int, default=500, help="clips for the short modes")
    parser.add_argument("--exact-clips", type=int, default=64, help="clips for exact mode (30 s per clip)")
    parser.add_argument("--naive-clips", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from whisper.model import ModelDimensions

    from whisperlens.corpus import CorpusSelection
    from whisperlens.models.loading import load_checkpoint

    corpus = CorpusSelection(path=args.corpus).open()
    dims = ModelDimensions(**load_checkpoint("tiny.en")["dims"])
    print(f"machine: {torch.get_num_threads()} torch threads; corpus {corpus.root} ({len(corpus)} English clips)")
    throughput = {"fp32": matmul_throughput(torch.float32), "bf16": matmul_throughput(torch.bfloat16)}
    print(f"matmul 2048^3: fp32 {throughput['fp32'] / 1e9:.0f} GFLOP/s, bf16 {throughput['bf16'] / 1e9:.0f} GFLOP/s")
    flops = encoder_flops(dims, 100)
    limits = {"fp32": throughput["fp32"] / flops, "bf16": throughput["bf16"] / flops}
    print(f"encoder FLOPs per 2 s clip in short mode: {flops / 1e9:.2f} G -> limit {limits['fp32']:.0f} clips/s fp32, "
          f"{limits['bf16']:.0f} clips/s bf16 (exact mode: {encoder_flops(dims, 1500) / flops:.0f}x the FLOPs)")
    naive = time_naive(corpus, args.naive_clips)
    print(f"naive (openai Whisper, hooks on mlp[1], 1 clip at a time, 30 s, Python top-k): {naive:.2f} clips/s")
    rates = {}
    for mode, clips in (("exact", args.exact_clips), ("short", args.clips), ("short-bf16", args.clips)):
        rates[mode] = time_harvest(corpus, mode, clips, args.batch_size)
        limit = limits["bf16" if mode == "short-bf16" else "fp32"]
        print(f"harvest {mode:10s} ({clips} clips): {rates[mode]:7.1f} clips/s = {rates[mode] / naive:6.1f}x naive, "
              f"{rates[mode] / limit:5.1%} of the {'bf16' if mode == 'short-bf16' else 'fp32'} limit")
    best = max(rates, key=rates.get)
    print(f"fastest: {best}, {rates[best] / naive:.1f}x naive (goal >= 20x), "
          f"{rates[best] / limits['bf16' if best == 'short-bf16' else 'fp32']:.1%} of its limit (goal >= 30%)")


if __name__ == "__main__":
    main()
