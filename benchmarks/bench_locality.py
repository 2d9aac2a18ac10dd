"""The band sweep's throughput: the locality study's way against the naive way.

The job: greedy transcripts of N English corpus clips under every ±k band on all encoder heads
(k in none, 200, 100, 75, 50, 20, 10, 5) and under a k=10 band on each single head.

- study: `whisperlens.studies.locality.sweep.decode_masks`: one clean encoder pass per batch of
  clips keeps every block's input; each mask resumes from the first block it touches (a mask on
  one head of the last layer reruns one block); a band on every head attends chunk by chunk to
  the keys it reaches only; the outputs of several masks decode together (64 rows), finished rows
  leave the batch, and the cross-attention keys and values are computed once per output and shared
  with the teacher-forced scoring;
- naive transcribe: openai's `transcribe`, one clip at a time and one mask at a time, the mask
  applied with the `AttentionMask` intervention: a full encoder pass and a batch-of-one decode
  every time;
- naive decode: the same through `whisper.decode` on the clip's own log-mel (what the study sees).

All predict timestamps, greedily, to the same token limit; the script counts the transcripts
identical to the study's. "naive decode" sees the same input, so all should be (up to float
summation order in a batch); `transcribe` pads the clip's log-mel frames with zeros to 30 s where
the study takes the log-mel of the clip padded with silence, and under a narrow band the padding
is much of what a position sees, so many masked transcripts differ.

The study also scores each reference teacher-forced (one more decoder pass per mask and batch),
which the naive ways do not.

    python benchmarks/bench_locality.py [--corpus DIR] [--clips 4] [--model tiny.en] [--threads N] [--no-heads]
        [--no-naive-decode]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus)")
    parser.add_argument("--clips", type=int, default=4, help="English clips (default 4)")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--no-heads", action="store_true", help="only the all-heads bands, not each head at k=10")
    parser.add_argument("--no-naive-decode", action="store_true", help="time only the naive `transcribe`")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import whisperlens
    from whisperlens.corpus.selection import CorpusSelection
    from whisperlens.studies.locality.sweep import decode_masks, global_masks, head_masks
    from whisperlens.transcripts import clip_mels, decode

    model = whisperlens.load_model(args.model)
    clips = list(CorpusSelection(path=args.corpus, clips=args.clips).open())
    masks = global_masks()
    if not args.no_heads:
        masks += head_masks(model.dims.n_audio_layer, model.dims.n_audio_head)
    total = len(clips) * len(masks)
    print(f"model {args.model}, {len(clips)} clips x {len(masks)} masks = {total} transcripts, "
          f"torch threads {torch.get_num_threads()}")

    start = time.perf_counter()
    study = decode_masks(model, clips, masks, args.max_tokens, batch_size=len(clips))
    study_seconds = time.perf_counter() - start

    def transcribe(clip) -> str:
        return model.transcribe(np.asarray(clip.audio, dtype=np.float32), language="en", temperature=0.0, fp16=False,
                                sample_len=args.max_tokens, condition_on_previous_text=False,
                                no_speech_threshold=None)["text"].strip()

    def decode_alone(clip) -> str:
        return decode(model, clip_mels(model, [clip]), args.max_tokens, timestamps=True)[0].text.strip()

    print(f"study             {study_seconds:7.1f} s  {total / study_seconds:6.2f} transcripts/s")
    naive = [("naive transcribe", transcribe)] + ([] if args.no_naive_decode else [("naive decode", decode_alone)])
    for name, transcribe_one in naive:
        start = time.perf_counter()
        texts = []
        for mask in masks:
            with model.intervene(*mask.interventions()):
                texts.append([transcribe_one(clip) for clip in clips])
        seconds = time.perf_counter() - start
        agree = sum(a.strip() == b for ours, theirs in zip(study, texts) for a, b in zip(ours.texts, theirs))
        print(f"{name:17} {seconds:7.1f} s  {total / seconds:6.2f} transcripts/s  (same transcript as the study: "
              f"{agree}/{total}); the study is {seconds / study_seconds:.2f}x faster")


if __name__ == "__main__":
    main()
