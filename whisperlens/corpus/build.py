"""Building a corpus: plan every clip, synthesize shards in fresh worker processes, and
publish a manifest and info.json once every shard exists.

A fresh process per shard (spawn, one task per child) because espeak-ng's output depends
on what the same process synthesized before; with it, a shard's bytes depend only on its
plan, so an interrupted build resumes by redoing only the shards without a finished file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import WhisperLensError
from . import storage
from .engines import SAMPLE_RATE, Request, get_engine
from .nonspeech import render_nonspeech
from .render import place_speech
from .sets import SET_NAMES, ClipSpec, plan_set

FORMAT_VERSION = 1
DEFAULT_SETS = SET_NAMES
DEFAULT_CLIPS = 10_000
CLIPS_PER_SHARD = 200
PYTHON_PACKAGES = ("numpy", "soxr", "soundfile")


def default_corpus_dir() -> Path:
    """$WHISPERLENS_CORPUS, else the user cache directory's whisperlens/corpus/default."""
    if os.environ.get("WHISPERLENS_CORPUS"):
        return Path(os.environ["WHISPERLENS_CORPUS"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("whisperlens")) / "corpus" / "default"


@dataclass
class CorpusConfig:
    """What to build. `clips` is the number of clips per set: the English set is generated
    to any size; the fixed sets (pairs, sentences, non-speech) stop at their full list."""

    out: Path | str | None = None
    clips: int = DEFAULT_CLIPS
    seed: int = 0
    sets: tuple[str, ...] = DEFAULT_SETS
    workers: int = 2
    clip_seconds: float = 2.0
    clips_per_shard: int = CLIPS_PER_SHARD

    def __post_init__(self) -> None:
        self.out = Path(self.out).expanduser() if self.out is not None else default_corpus_dir()
        if isinstance(self.sets, str):
            self.sets = (self.sets,)
        self.sets = tuple(dict.fromkeys(self.sets))

    def validate(self) -> None:
        if not isinstance(self.clips, int) or self.clips <= 0:
            raise WhisperLensError(f"--clips must be a positive whole number, got {self.clips}")
        if not self.sets:
            raise WhisperLensError(f"no sets chosen; choose from {', '.join(SET_NAMES)}")
        unknown = [name for name in self.sets if name not in SET_NAMES]
        if unknown:
            raise WhisperLensError(f"unknown set {unknown[0]!r}; choose from {', '.join(SET_NAMES)}")
        if self.workers < 1:
            raise WhisperLensError(f"--workers must be at least 1, got {self.workers}")
        if not 0.5 <= self.clip_seconds <= 30:
            raise WhisperLensError(f"clip length must be between 0.5 and 30 s, got {self.clip_seconds}")
        if self.clips_per_shard < 1:
            raise WhisperLensError(f"clips per shard must be at least 1, got {self.clips_per_shard}")


@dataclass
class ShardTask:
    root: str
    name: str
    fingerprint: str
    specs: list[dict]
    clip_seconds: float
    extra_header: dict = field(default_factory=dict)


def plan_shards(config: CorpusConfig) -> list[tuple[str, list[ClipSpec]]]:
    shards = []
    for set_name in config.sets:
        specs = plan_set(set_name, config.seed, config.clips)
        for start in range(0, len(specs), config.clips_per_shard):
            shards.append((f"{set_name}-{start // config.clips_per_shard:05d}", specs[start: start + config.clips_per_shard]))
    return shards


def package_versions(engine_names: set[str]) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PYTHON_PACKAGES:
        versions[package] = importlib.metadata.version(package)
    for name in sorted(engine_names):
        versions.update(get_engine(name).versions())
    return versions


def check_engines(shards) -> set[str]:
    """Fail before any work when an engine or voice the plan needs is missing."""
    needed = {(spec.engine, spec.voice) for _, specs in shards for spec in specs if spec.engine != "synthetic"}
    for engine_name in sorted({engine for engine, _ in needed}):
        engine = get_engine(engine_name)
        for voice in sorted(voice for name, voice in needed if name == engine_name):
            engine.check_voice(voice)
    return {engine for engine, _ in needed}


def check_writable(root: Path) -> None:
    try:
        (root / storage.SHARDS).mkdir(parents=True, exist_ok=True)
        probe = root / storage.SHARDS / f"probe{storage.TEMPORARY_MARK}{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise WhisperLensError(f"cannot write the corpus to {root}: {error.strerror or error}") from None


def fingerprint(specs: list[ClipSpec], versions: dict, clip_seconds: float) -> str:
    payload = json.dumps(
        {"format": FORMAT_VERSION, "clip_seconds": clip_seconds, "versions": versions,
         "specs": [spec.to_dict() for spec in specs]},
        sort_keys=True, ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def build_corpus(config: CorpusConfig, progress: bool = True) -> dict:
    """Build (or finish building) the corpus described by `config`; returns its info.json."""
    config.validate()
    root = Path(config.out)
    check_writable(root)
    shards = plan_shards(config)
    engines = check_engines(shards)
    versions = package_versions(engines)
    storage.remove_temporaries(root)
    tasks = []
    for name, specs in shards:
        shard_fingerprint = fingerprint(specs, versions, config.clip_seconds)
        header = storage.read_shard_header(root, name)
        if header is None or header.get("fingerprint") != shard_fingerprint:
            tasks.append(ShardTask(str(root), name, shard_fingerprint, [s.to_dict() for s in specs], config.clip_seconds))
    started = time.perf_counter()
    if tasks:
        (root / storage.INFO).unlink(missing_ok=True)  # the corpus is incomplete until the end
        _run_tasks(tasks, config.workers, progress, sum(len(task.specs) for task in tasks))
    built_seconds = time.perf_counter() - started
    return _finalize(root, config, shards, versions, built_seconds, built_clips=sum(len(t.specs) for t in tasks))


def _run_tasks(tasks: list[ShardTask], workers: int, progress: bool, total_clips: int) -> None:
    from tqdm import tqdm

    bar = tqdm(total=total_clips, unit="clip", desc="corpus", disable=not progress)
    context = multiprocessing.get_context("spawn")
    try:
        with context.Pool(min(workers, len(tasks)), maxtasksperchild=1) as pool:
            for clip_count in pool.imap_unordered(build_shard, tasks):
                bar.update(clip_count)
    finally:
        bar.close()


def build_shard(task: ShardTask) -> int:
    """Synthesize and write one shard; runs in a fresh worker process."""
    specs = [ClipSpec(**spec) for spec in task.specs]
    syntheses = _synthesize(specs)
    records, chunks, offset = [], [], 0
    for spec in specs:
        if spec.engine == "synthetic":
            rendered = render_nonspeech(spec, task.clip_seconds)
        else:
            rendered = place_speech(spec, syntheses[spec.id], task.clip_seconds)
        words = [list(word) for word in rendered.words]
        records.append({
            "id": spec.id, "set": spec.set, "engine": spec.engine, "voice": spec.voice,
            "language": spec.language, "text": " ".join(word[0] for word in words),
            "duration": len(rendered.audio) / SAMPLE_RATE, "words": words,
            "phones": [list(phone) for phone in rendered.phones],
            "meta": {**spec.meta, **rendered.meta_extra, "prompt": spec.text, "rate": spec.rate,
                     "peak": spec.peak, "seed": spec.seed},
            "shard": task.name, "offset": offset, "samples": len(rendered.audio),
        })
        chunks.append(rendered.audio)
        offset += len(rendered.audio)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    header = {"shard": task.name, "fingerprint": task.fingerprint, "format": FORMAT_VERSION}
    storage.write_shard(Path(task.root), task.name, header, records, audio)
    return len(specs)


def _synthesize(specs: list[ClipSpec]) -> dict:
    """Each engine's clips as one batch, in plan order (festival starts once per batch)."""
    by_engine: dict[str, list[ClipSpec]] = {}
    for spec in specs:
        if spec.engine != "synthetic":
            by_engine.setdefault(spec.engine, []).append(spec)
    results = {}
    for engine_name in sorted(by_engine):
        batch = by_engine[engine_name]
        requests = [Request(spec.text, spec.voice, spec.rate, spec.seed) for spec in batch]
        for spec, synthesis in zip(batch, get_engine(engine_name).synthesize_batch(requests)):
            results[spec.id] = synthesis
    return results


def _finalize(root: Path, config: CorpusConfig, shards, versions: dict, built_seconds: float, built_clips: int) -> dict:
    digest = hashlib.sha256()
    manifest_lines = []
    for name, _ in shards:
        header, lines = storage.read_shard_lines(root, name)
        digest.update(header.encode())
        digest.update("".join(lines).encode())
        manifest_lines.extend(lines)
    planned = {f"{name}{suffix}" for name, _ in shards for suffix in (".flac", ".jsonl")}
    for path in (root / storage.SHARDS).iterdir():
        if path.name not in planned:  # left by an earlier build with other settings
            path.unlink()
    storage.write_text_atomically(root / storage.MANIFEST, "".join(manifest_lines))
    counts: dict[str, int] = {}
    for line in manifest_lines:
        set_name = json.loads(line)["set"]
        counts[set_name] = counts.get(set_name, 0) + 1
    info = {
        "format": FORMAT_VERSION,
        "hash": digest.hexdigest(),
        "clips": len(manifest_lines),
        "sets": counts,
        "config": {"clips": config.clips, "seed": config.seed, "sets": list(config.sets),
                   "clip_seconds": config.clip_seconds, "clips_per_shard": config.clips_per_shard},
        "sample_rate": SAMPLE_RATE,
        "shards": [name for name, _ in shards],
        "versions": versions,
        "last_build": {"clips_built": built_clips, "seconds": round(built_seconds, 2), "workers": config.workers},
    }
    storage.write_text_atomically(root / storage.INFO, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return info
