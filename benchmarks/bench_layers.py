"""Layer-removal decoding throughput: the layers study's way against the naive way.

The job: greedy transcripts of N English corpus clips under every configuration of the layers
study (the full model; keep the first n blocks and skip each single block, per stack).

- study: `whisperlens.studies.layers.removal.decode_configurations`: one encoder pass per batch
  of clips serves every configuration (the encoder lens and "keep n" read the cached residual
  stream; "skip i" resumes from block i's cached input), and each configuration decodes the
  whole batch at once;
- naive: one `model.transcribe` per clip and configuration, the blocks skipped with the
  `SkipLayers` intervention: an encoder pass and a batch-of-one decode every time.

Both decode greedily without timestamps, to the same token limit; the script also reports how
many transcripts agree between the two.

    python benchmarks/bench_layers.py [--corpus DIR] [--clips 8] [--model tiny.en] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus)")
    parser.add_argument("--clips", type=int, default=8, help="English clips (default 8)")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import whisperlens
    from whisperlens.corpus.selection import CorpusSelection
    from whisperlens.interventions import SkipLayers
    from whisperlens.studies.layers.removal import configurations, decode_configurations

    model = whisperlens.load_model(args.model)
    clips = [clip for clip in CorpusSelection(path=args.corpus, clips=args.clips).open()]
    found = configurations(model.dims.n_audio_layer, model.dims.n_text_layer)
    decodes = len(clips) * len(found)
    print(f"model {args.model}, {len(clips)} clips x {len(found)} configurations = {decodes} transcripts, "
          f"torch threads {torch.get_num_threads()}")

    start = time.perf_counter()
    study = decode_configurations(model, clips, found, args.max_tokens, batch_size=len(clips))
    study_seconds = time.perf_counter() - start

    start = time.perf_counter()
    naive = []
    for configuration in found:
        interventions = [SkipLayers(configuration.removed, stack=configuration.stack)] if configuration.removed else []
        naive.append([model.transcribe(np.asarray(clip.audio, dtype=np.float32), interventions=interventions,
                                       language="en", temperature=0.0, fp16=False, without_timestamps=True,
                                       sample_len=args.max_tokens, condition_on_previous_text=False,
                                       no_speech_threshold=None)["text"].strip()
                      for clip in clips])
    naive_seconds = time.perf_counter() - start

    agree = sum(a == b for ours, theirs in zip(study.texts, naive) for a, b in zip(ours, theirs))
    print(f"study  {study_seconds:7.1f} s  {decodes / study_seconds:6.2f} transcripts/s")
    print(f"naive  {naive_seconds:7.1f} s  {decodes / naive_seconds:6.2f} transcripts/s")
    print(f"ratio  {naive_seconds / study_seconds:.1f}x faster; {agree} of {decodes} transcripts identical")


if __name__ == "__main__":
    main()
