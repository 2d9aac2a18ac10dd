"""Peak memory of the patching study's inputs: the log-mels of every pair's two clips (640 clips of
30 s for the corpus's 320 minimal pairs), transformed in `audio.MEL_CHUNK`-clip chunks (now) against
all at once (before: the complex STFT of 640 clips alone is 3 GB).

Each way runs in its own process, since a process's peak resident memory only grows.

    python benchmarks/bench_mel_memory.py [--pairs 320]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys


def measure(pairs: int, chunk: int | None) -> tuple[int, int]:
    """(peak MB before the mels, peak MB after) of one process that builds the pairs' inputs."""
    import whisperlens.audio
    from whisperlens.corpus.selection import CorpusSelection
    from whisperlens.studies.patching.pairs import minimal_pairs, patch_pairs
    from whisperlens.study import ModelSpec, StudyContext

    if chunk is not None:
        whisperlens.audio.MEL_CHUNK = chunk
    context = StudyContext("runs/bench-mel-memory", progress=False)
    model = context.model(ModelSpec())
    chosen, _ = minimal_pairs(context.corpus(CorpusSelection(sets=("minimal_pairs",))), pairs)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    patch_pairs(model, chosen)
    return before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=320)
    parser.add_argument("--chunk", type=int, help=argparse.SUPPRESS)  # set by the parent for the child process
    args = parser.parse_args()
    if args.chunk is not None:
        print(*measure(args.pairs, None if args.chunk == 0 else args.chunk))
        return
    import whisperlens.audio

    results = {}
    for label, chunk in (("in chunks", 0), ("all at once", 1_000_000)):
        output = subprocess.run([sys.executable, __file__, "--pairs", str(args.pairs), "--chunk", str(chunk)],
                                check=True, capture_output=True, text=True).stdout.split()
        results[label] = [int(v) for v in output[-2:]]
    print(f"{args.pairs} pairs ({2 * args.pairs} clips), peak resident memory, MB (before the mels -> after):")
    for label, (before, after) in results.items():
        chunking = f"{whisperlens.audio.MEL_CHUNK} clips a chunk" if label == "in chunks" else "one chunk"
        print(f"  {label:12s} ({chunking}): {before} -> {after}")
    print(f"  all at once / in chunks: {results['all at once'][1] / results['in chunks'][1]:.2f}x the peak")


if __name__ == "__main__":
    main()
