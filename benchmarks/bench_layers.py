"""Layer-removal decoding throughput: the layers study's way against the naive way.

The job: greedy transcripts of N English corpus clips under every configuration of the layers
study (the full model; keep the first n blocks and skip each single block, per stack).

- study: `whisperlens.studies.layers.removal.decode_configurations`: one encoder pass per batch
  of clips serves every configuration (the encoder lens and "keep n" read the cached residual
  stream; "skip i" resumes from block i's cached input), and each configuration decodes the
  whole batch at once;
- naive transcribe: one `model.transcribe` per clip and configuration, the blocks skipped with
  the `SkipLayers` intervention: an encoder pass and a batch-of-one decode every time;
- naive decode: the same, through `whisper.decode` on the clip's own log-mel.

All decode greedily without timestamps, to the same token limit, and the script counts the
transcripts identical to the study's. "naive decode" sees the same input, so all should be;
`transcribe` keeps only the log-mel frames that cover the clip and pads them with zeros to 30 s,
where the study (and `wer`) take the log-mel of the clip padded with silence, and a model with
layers removed is chaotic enough that this small difference changes many of its transcripts.

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
    from whisperlens.transcripts import clip_mels, decode

    model = whisperlens.load_model(args.model)
    clips = [clip for clip in CorpusSelection(path=args.corpus, clips=args.clips).open()]
    found = configurations(model.dims.n_audio_layer, model.dims.n_text_layer)
    decodes = len(clips) * len(found)
    print(f"model {args.model}, {len(clips)} clips x {len(found)} configurations = {decodes} transcripts, "
          f"torch threads {torch.get_num_threads()}")

    start = time.perf_counter()
    study = decode_configurations(model, clips, found, args.max_tokens, batch_size=len(clips))
    study_seconds = time.perf_counter() - start

    def one_at_a_time(transcribe_one) -> tuple[float, list[list[str]]]:
        start = time.perf_counter()
        texts = []
        for configuration in found:
            skipped = [SkipLayers(configuration.removed, stack=configuration.stack)] if configuration.removed else []
            with model.intervene(*skipped):
                texts.append([transcribe_one(clip) for clip in clips])
        return time.perf_counter() - start, texts

    def transcribe(clip) -> str:
        return model.transcribe(np.asarray(clip.audio, dtype=np.float32), language="en", temperature=0.0, fp16=False,
                                without_timestamps=True, sample_len=args.max_tokens, condition_on_previous_text=False,
                                no_speech_threshold=None)["text"].strip()

    def decode_alone(clip) -> str:
        return decode(model, clip_mels(model, [clip]), args.max_tokens)[0].text

    print(f"study            {study_seconds:7.1f} s  {decodes / study_seconds:6.2f} transcripts/s")
    for name, transcribe_one in (("naive transcribe", transcribe), ("naive decode", decode_alone)):
        seconds, texts = one_at_a_time(transcribe_one)
        agree = sum(a == b for ours, theirs in zip(study.texts, texts) for a, b in zip(ours, theirs))
        print(f"{name:16s} {seconds:7.1f} s  {decodes / seconds:6.2f} transcripts/s   study {seconds / study_seconds:.1f}x "
              f"faster; {agree} of {decodes} transcripts identical")

if __name__ == "__main__":
    main()
