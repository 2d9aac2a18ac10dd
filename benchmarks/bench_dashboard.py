"""The dashboard's speed targets (issue 13), measured against a running server over HTTP:

- feature search over a store of the default size: p95 under 200 ms;
- an uploaded 10 s clip to transcript plus timeline: under 3 s (tiny.en, 2 cores);
- one intervention re-run: under 2 s (one that reruns the encoder, an attention band, and one
  that reuses the clip's kept encoder output, word removal).

The store: `--store DIR` (e.g. runs/main/features/store after `whisperlens run`), or else one
of the default size built here: every default site (encoder MLP neurons and residual stream,
random directions, an SAE on blocks 2 and 3, decoder MLP neurons), harvested over `--clips`
clips of a small corpus built for it, the SAEs trained briefly. Search cost depends on how many
features the index holds, not on how many clips the store saw, so this store stands in for the
full one. The 10 s clip is speech synthesized with flite, a new version of it for each timed upload.

    python benchmarks/bench_dashboard.py [--store DIR] [--clips 80] [--searches 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

TEXT = ("The quick brown fox jumps over the lazy dog, and then it runs across the field to the river, "
        "where seven children are playing with a red ball in the afternoon sun before they go home for supper.")


def build_default_store(folder: Path, clips: int) -> Path:
    from whisperlens.corpus import CorpusConfig, build_corpus
    from whisperlens.corpus.selection import CorpusSelection
    from whisperlens.features.build import build_features
    from whisperlens.features.config import FeaturesConfig
    from whisperlens.models.loading import load_model

    build_corpus(CorpusConfig(out=folder / "corpus", clips=clips, sets=("english",), workers=1), progress=False)
    config = FeaturesConfig(corpus=CorpusSelection(path=str(folder / "corpus")), store=str(folder / "store"),
                            sae_training_vectors=20_000, html=False)
    build_features(config, config.corpus.open(), load_model("tiny.en"), progress=False)
    return folder / "store"


def ten_second_clips(folder: Path, n: int) -> list[Path]:
    """`n` versions of the 10 s clip, each a little quieter than the last (0.1 % a step): the same
    speech, but new audio to the server, which keeps each clip's encoder output once seen."""
    import soundfile

    from whisperlens.audio import SAMPLE_RATE, load_audio

    subprocess.run(["flite", "-voice", "kal16", "-t", TEXT, "-o", str(folder / "speech.wav")], check=True)
    audio = load_audio(folder / "speech.wav")[: 10 * SAMPLE_RATE]
    audio = np.pad(audio, (0, 10 * SAMPLE_RATE - len(audio)))
    for version in range(n):
        soundfile.write(folder / f"ten-seconds-{version}.wav", audio * (1 - 0.001 * version), SAMPLE_RATE, subtype="FLOAT")
    return [folder / f"ten-seconds-{version}.wav" for version in range(n)]


def cpu_seconds() -> float:
    """CPU time of this process, every thread (the server runs in it): unlike wall time, little
    changed by other processes sharing the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=300) as response:
        return json.load(response)


def post(url: str, data: bytes, content_type: str) -> dict:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = "whisperlens-benchmark"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def search_queries(index, n: int) -> list[dict]:
    """A mix of what a person does in the browser: phone filters, sorts, text search, later pages."""
    rng = random.Random(0)
    queries = []
    for _ in range(n):
        query = {"sort": rng.choice(["score", "max", "firing", "selectivity", "phone", "feature"]),
                 "order": rng.choice(["asc", "desc"])}
        kind = rng.random()
        if kind < 0.4:
            query["phone"] = rng.choice(index.phones)
        elif kind < 0.6:
            query["q"] = rng.choice(index.phones + ["hook_post:1", "resid", "sae", "the"])
        elif kind < 0.8:
            query |= {"site": rng.choice(index.sites), "selective": "yes", "min_firing": "0.01"}
        query["page"] = rng.choice([1, 1, 2, 5])
        queries.append(query)
    return queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="a feature store (default: build one of the default size)")
    parser.add_argument("--clips", type=int, default=80, help="clips for the store built here (default 80: an SAE batch)")
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="timed uploads and interventions (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()

    import torch

    from whisperlens.dashboard.app import create_app
    from whisperlens.dashboard.feature_index import FeatureIndex
    from whisperlens.dashboard.server import serving
    from whisperlens.features.store import FeatureStore

    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    started = time.perf_counter()
    store = Path(args.store) if args.store else build_default_store(work, args.clips)
    built = time.perf_counter() - started
    started = time.perf_counter()
    index = FeatureIndex(FeatureStore(store))
    indexed = time.perf_counter() - started
    (work / "run").mkdir()
    if args.threads:  # set after the build, whose SAE training sets its own
        torch.set_num_threads(args.threads)
    print(f"store {'given' if args.store else f'built here in {built:.0f} s'}: {index.size} features over "
          f"{len(index.sites)} sites; index ready in {indexed:.2f} s (built if missing or stale)")
    load = os.getloadavg()[0]
    print(f"torch threads {torch.get_num_threads()}, load average {load:.1f} on {os.cpu_count()} CPUs"
          + (" (above the CPU count: other work shares the cores and times inflate)" if load > os.cpu_count() else ""))

    clips = ten_second_clips(work, args.repeats + 1)
    with serving(create_app(work / "run", [], store=store)) as base:
        latencies = []
        for query in search_queries(index, args.searches):
            started = time.perf_counter()
            get(f"{base}/api/features?{urllib.parse.urlencode(query)}")
            latencies.append(1000 * (time.perf_counter() - started))
        p50, p95 = np.percentile(latencies, [50, 95])
        print(f"feature search, {len(latencies)} queries: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(latencies):.1f} ms "
              f"(target p95 < 200 ms: {'met' if p95 < 200 else 'missed'}, {p95 / 200:.2f}x the target)")

        upload_seconds, upload_cpu, analysis = [], [], None
        for attempt, clip in enumerate(clips):  # the first loads the model
            body, content_type = multipart(clip)
            started, cpu = time.perf_counter(), cpu_seconds()
            key = post(f"{base}/api/clips", body, content_type)["clip"]
            analysis = get(f"{base}/api/clips/{key}/analysis?site=encoder.blocks.2.mlp.hook_post")
            if attempt:
                upload_seconds.append(time.perf_counter() - started)
                upload_cpu.append(cpu_seconds() - cpu)
        median = statistics.median(upload_seconds)
        print(f"10 s clip, upload to transcript + timeline: median {median:.2f} s of {len(upload_seconds)} "
              f"(target < 3 s: {'met' if median < 3 else 'missed'}, {median / 3:.2f}x), "
              f"{statistics.median(upload_cpu):.2f} CPU s; "
              f"{len(analysis['words'])} words, {len(analysis['features'])} frames: {analysis['text'][:60]}...")

        band = {"interventions": [{"kind": "attention_mask", "stack": "encoder", "half_width": 2}]}
        post(f"{base}/api/clips/{key}/poke", json.dumps(band).encode(), "application/json")  # the plain transcript is kept
        time_poke(base, key, band, "attention band ±2, the encoder rerun", args.repeats)
        word = analysis["words"][len(analysis["words"]) // 2]
        removal = {"remove": [{"start": word["start"], "end": word["end"]}]}
        time_poke(base, key, removal, f"word removal of {word['word']!r}, the kept encoder output", args.repeats)


def time_poke(base: str, key: str, body: dict, what: str, repeats: int) -> None:
    seconds, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), cpu_seconds()
        result = post(f"{base}/api/clips/{key}/poke", json.dumps(body).encode(), "application/json")
        seconds.append(time.perf_counter() - started)
        cpu.append(cpu_seconds() - cpu_started)
    median = statistics.median(seconds)
    print(f"one intervention re-run ({what}, 10 s clip): median {median:.2f} s of {len(seconds)} "
          f"(target < 2 s: {'met' if median < 2 else 'missed'}, {median / 2:.2f}x), "
          f"{statistics.median(cpu):.2f} CPU s: {result['text'][:60]}...")


if __name__ == "__main__":
    main()
