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

The fp32 `short` mode is measured twice: folding each batch into the statistics in line, and
pipelined (`HarvestConfig.pipeline`, off by default: the statistics of one batch on a second thread
while the model runs the next; the "short" lines are the pipelined ones). `--profile`
adds where a short-mode batch's time goes: the forward pass by operator (torch.profiler) and the
statistics. It also prints what `--mode auto` chooses here (the harvest's bf16 matmul probe).

    python benchmarks/bench_features.py --corpus DIR [--clips 500] [--naive-clips 16] [--exact-clips 64] [--profile]
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


def harvest_config(mode: str, batch_size: int, pipeline: bool = True):
    """The benchmark's job: top-k (and the rest of the statistics) of every encoder MLP neuron."""
    from whisperlens.features.harvest import HarvestConfig

    return HarvestConfig(hooks=("encoder.blocks.*.mlp.hook_post",), bases=("neurons",), mode=mode,
                         batch_size=batch_size, top_k=32, negatives=False, pipeline=pipeline)


def time_harvest(corpus, mode: str, clips: int, batch_size: int, pipeline: bool = True) -> float:
    from whisperlens.features.harvest import Harvester, model_for_mode

    config = harvest_config(mode, batch_size, pipeline)
    model = model_for_mode(config.model, mode, "cpu")
    Harvester(corpus[:batch_size], config, model).run(progress=False)  # warm-up: numba, oneDNN kernels
    result = Harvester(corpus[:clips], config, model).run(progress=False)
    return result.clips_per_second


def profile_short(corpus, clips: int, batch_size: int) -> None:
    """Where a short-mode batch's time goes: model operators (torch.profiler) and the statistics."""
    from torch.profiler import ProfilerActivity, profile

    from whisperlens.features.harvest import Harvester, model_for_mode

    config = harvest_config("short", batch_size, pipeline=False)
    model = model_for_mode(config.model, "short", "cpu")
    harvester = Harvester(corpus[:clips], config, model)
    harvester.process_batch(next(iter(Harvester(corpus[:batch_size], config, model).stream())))  # warm-up
    forward = folding = 0.0
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        stream = iter(harvester.stream())
        while True:
            start = time.perf_counter()
            batch = next(stream, None)
            forward += time.perf_counter() - start
            if batch is None:
                break
            start = time.perf_counter()
            harvester.process_batch(batch)
            folding += time.perf_counter() - start
    total = forward + folding
    print(f"profile, short mode, {clips} clips in line: stream (mel + forward) {forward:.2f} s ({forward / total:.0%}), "
          f"statistics {folding:.2f} s ({folding / total:.0%})")
    events = sorted(profiler.key_averages(), key=lambda e: -e.self_cpu_time_total)
    own = sum(e.self_cpu_time_total for e in events)
    print("  operators by self time: " + ", ".join(
        f"{e.key} {e.self_cpu_time_total / own:.0%}" for e in events[:10]))


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
    parser.add_argument("--exact-batch-size", type=int, default=8,
                        help="clips per batch in exact mode (30 s each: large batches leave the caches)")
    parser.add_argument("--profile", action="store_true", help="also print where a short-mode batch's time goes")
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
    from whisperlens.features.harvest import choose_mode, probe_matmul

    probe = probe_matmul()
    print(f"mode auto: the harvest's probe measured bf16 {probe.bf16_gflops:.0f} GFLOP/s against fp32 "
          f"{probe.fp32_gflops:.0f} -> chooses {choose_mode('auto')}")
    rates = {}
    runs = (("exact", args.exact_clips, args.exact_batch_size, True), ("short (in line)", args.clips, args.batch_size, False),
            ("short", args.clips, args.batch_size, True), ("short-bf16", args.clips, args.batch_size, True))
    for label, clips, batch_size, pipeline in runs:
        mode = label.split()[0]
        rates[label] = time_harvest(corpus, mode, clips, batch_size, pipeline)
        precision = "bf16" if mode == "short-bf16" else "fp32"
        print(f"harvest {label:15s} ({clips} clips, batch {batch_size}): {rates[label]:7.1f} clips/s = "
              f"{rates[label] / naive:6.1f}x naive, {rates[label] / limits[precision]:5.1%} of the {precision} limit")
    print(f"fp32 short: {rates['short'] / naive:.1f}x naive (goal >= 25x), {rates['short'] / limits['fp32']:.1%} of the "
          f"fp32 limit; pipelining {rates['short'] / rates['short (in line)']:.2f}x in-line folding; "
          f"exact {rates['exact'] / naive:.1f}x naive")
    if args.profile:
        profile_short(corpus, min(args.clips, 256), args.batch_size)


if __name__ == "__main__":
    main()
