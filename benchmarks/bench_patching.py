"""The seed's override matrix: the patching study's way against the naive way.

The job: for N minimal pairs, A's encoder output at each source layer written over B's at each
target layer (16 layer pairs on tiny.en), scored with the seed's binary metric (is A's word in
the transcript?) and, for the study, also the normalised logit difference.

- study: `whisperlens.studies.patching.matrix.layer_matrix`: pairs batched, each patched run
  starting from B's cached residual stream after the target layer (a whole-stream patch at the
  same layer is A's own run, reused), one teacher-forced decoder pass on the shared prefix
  scoring both candidates, and one batched greedy decode per patch for the binary metric;
- naive: as seed 004 did it, a forward hook on `encoder.blocks[t]` returning A's block-s output,
  and one `model.transcribe` of B per pair and layer pair (binary metric only).

The script counts the binary outcomes on which the two agree (`transcribe` pads the clip's own
log-mel frames with zeros where the study takes the log-mel of the clip padded with silence, and
may fall back to sampling, so a few may differ).

    python benchmarks/bench_patching.py [--corpus DIR] [--pairs 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus)")
    parser.add_argument("--pairs", type=int, default=4, help="minimal pairs (default 4)")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import whisperlens
    from whisperlens.audio import log_mel
    from whisperlens.corpus.selection import CorpusSelection
    from whisperlens.studies.patching.matrix import layer_matrix
    from whisperlens.studies.patching.outcome import outcome_of
    from whisperlens.studies.patching.pairs import minimal_pairs

    model = whisperlens.load_model(args.model)
    pairs, _ = minimal_pairs(CorpusSelection(path=args.corpus, sets=("minimal_pairs",)).open(), args.pairs)
    n = model.dims.n_audio_layer
    print(f"model {args.model}, {len(pairs)} minimal pairs x {n * n} layer pairs, torch threads {torch.get_num_threads()}")

    start = time.perf_counter()
    study = layer_matrix(model, pairs, "en", batch_size=len(pairs))
    study_seconds = time.perf_counter() - start

    start = time.perf_counter()
    naive = np.zeros((len(pairs), n, n))
    with torch.no_grad():
        for row, pair in enumerate(pairs):
            states = []  # A's output of every block, recorded with plain forward hooks as the seed did
            handles = [block.register_forward_hook(lambda module, inputs, output, keep=states.append: keep(output))
                       for block in model.encoder.blocks]
            model.embed_audio(log_mel(pair.audio_a)[None])
            for handle in handles:
                handle.remove()
            for source in range(n):
                for target in range(n):
                    handle = model.encoder.blocks[target].register_forward_hook(
                        lambda module, inputs, output, value=states[source]: value)
                    try:
                        text = model.transcribe(pair.audio_b, language="en", fp16=False, verbose=None)["text"]
                    finally:
                        handle.remove()
                    naive[row, source, target] = outcome_of(text, pair.word_a, pair.word_b)
    naive_seconds = time.perf_counter() - start

    agree = float((naive == study["outcome"]).mean())
    print(f"study (both metrics):   {study_seconds:7.1f} s")
    print(f"naive (binary only):    {naive_seconds:7.1f} s")
    print(f"speed-up:               {naive_seconds / study_seconds:7.1f}x")
    print(f"binary outcomes equal:  {agree:.1%}")


if __name__ == "__main__":
    main()
