"""Reading a corpus: `Corpus` (a list-like view of clips) and `Clip` (one clip's labels,
with its audio loaded on first use). A corpus is a built one (`Corpus.open`) or real
recordings (`Corpus.from_asterisk`, `from_folder`, `from_hf_dataset`, from real.py)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import WhisperLensError
from . import real, storage
from .phones import Interval

SHARDS_KEPT_IN_MEMORY = 4  # a shard is ~13 MB of int16; sequential reads touch one at a time


@dataclass(eq=False)
class Clip:
    id: str
    set: str
    engine: str
    voice: str
    language: str | None
    text: str
    duration: float
    words: list[Interval]
    phones: list[Interval]
    meta: dict = field(default_factory=dict)
    _load_audio: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @property
    def audio(self) -> np.ndarray:
        """Mono float32 at 16 kHz."""
        if self._load_audio is None:
            raise WhisperLensError(f"clip {self.id} has no audio source")
        return self._load_audio()

    def frame_phones(self, n_frames: int, frame_seconds: float = 0.02) -> list[str | None]:
        """The phone under the centre of each frame (20 ms: one Whisper encoder position);
        None where no phone is (silence, or past the clip's end)."""
        labels: list[str | None] = [None] * n_frames
        phones = sorted(self.phones, key=lambda phone: phone[1])
        starts = np.array([start for _, start, _ in phones])
        for frame in range(n_frames):
            centre = (frame + 0.5) * frame_seconds
            index = int(np.searchsorted(starts, centre, side="right")) - 1
            if index >= 0 and phones[index][1] <= centre < phones[index][2]:
                labels[frame] = phones[index][0]
        return labels

    @classmethod
    def from_record(cls, record: dict, load_audio: Callable[[], np.ndarray] | None) -> Clip:
        return cls(
            id=record["id"], set=record["set"], engine=record.get("engine", ""), voice=record.get("voice", ""),
            language=record.get("language"), text=record.get("text", ""), duration=float(record["duration"]),
            words=[tuple(word) for word in record.get("words", [])],
            phones=[tuple(phone) for phone in record.get("phones", [])],
            meta=record.get("meta", {}), _load_audio=load_audio,
        )


class _ShardAudio:
    """Decoded shards, a few at a time: clips are read in order far more often than not."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def clip(self, shard: str, offset: int, samples: int) -> np.ndarray:
        if shard not in self._cache:
            try:
                self._cache[shard] = storage.read_shard_audio(self.root, shard)
            except (OSError, RuntimeError, ValueError) as error:
                raise WhisperLensError(f"{self.root}: cannot read shard {shard} ({error}); rebuild the corpus") from None
            while len(self._cache) > SHARDS_KEPT_IN_MEMORY:
                self._cache.popitem(last=False)
        self._cache.move_to_end(shard)
        return self._cache[shard][offset: offset + samples].astype(np.float32) / 32768.0


class Corpus:
    """An ordered collection of clips. Indexing gives a Clip; slicing and `select` give a
    Corpus that shares the parent's records and audio cache."""

    def __init__(self, clips: list[Clip], info: dict | None = None, root: Path | None = None) -> None:
        self._clips = clips
        self.info = info or {}
        self.root = root

    @classmethod
    def open(cls, path: str | Path | None = None) -> Corpus:
        """Open a built corpus (the default one if no path is given)."""
        from .build import default_corpus_dir

        root = Path(path).expanduser() if path is not None else default_corpus_dir()
        info_path, manifest_path = root / storage.INFO, root / storage.MANIFEST
        if not root.is_dir():
            raise WhisperLensError(f"{root}: no corpus there; build one with `whisperlens corpus build --out {root}`")
        if not info_path.exists() or not manifest_path.exists():
            raise WhisperLensError(
                f"{root}: corpus is incomplete (no {storage.INFO}); rerun `whisperlens corpus build --out {root}` to finish it"
            )
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            records = [json.loads(line) for line in manifest_path.read_text(encoding="utf-8").splitlines() if line]
        except ValueError as error:
            raise WhisperLensError(f"{root}: corrupt corpus metadata ({error}); rebuild it") from None
        if len(records) != info.get("clips"):
            raise WhisperLensError(f"{root}: manifest has {len(records)} clips, info.json says {info.get('clips')}; rebuild it")
        audio = _ShardAudio(root)

        def loader(record: dict) -> Callable[[], np.ndarray]:
            return lambda: audio.clip(record["shard"], record["offset"], record["samples"])

        return cls([Clip.from_record(record, loader(record)) for record in records], info, root)

    @classmethod
    def from_asterisk(cls, language: str = "en", **options) -> Corpus:
        """Asterisk's recorded prompts with transcripts (see `real.asterisk_recordings`)."""
        return cls.from_recordings(real.asterisk_recordings(language, **options))

    @classmethod
    def from_folder(cls, path: str | Path, **options) -> Corpus:
        """Audio files under a folder, same-stem .txt files as transcripts (`real.folder_recordings`)."""
        return cls.from_recordings(real.folder_recordings(path, **options))

    @classmethod
    def from_hf_dataset(cls, dataset, **options) -> Corpus:
        """A Hugging Face `datasets` audio dataset (`real.hf_dataset_recordings`)."""
        return cls.from_recordings(real.hf_dataset_recordings(dataset, **options))

    @classmethod
    def from_recordings(cls, recordings: real.Recordings) -> Corpus:
        pairs = zip(recordings.records, recordings.loaders, strict=True)
        return cls([Clip.from_record(record, load) for record, load in pairs], recordings.info)

    @property
    def hash(self) -> str | None:
        return self.info.get("hash")

    def __len__(self) -> int:
        return len(self._clips)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Corpus(self._clips[index], self.info, self.root)
        return self._clips[index]

    def __iter__(self) -> Iterator[Clip]:
        return iter(self._clips)

    def __repr__(self) -> str:
        return f"Corpus({len(self)} clips{f' at {self.root}' if self.root else ''})"

    def select(self, **filters) -> Corpus:
        """Clips whose attributes match: each value is a value, a collection of values, or a
        predicate, e.g. select(set="english", engine={"flite", "festival"})."""
        def matches(clip: Clip) -> bool:
            for name, wanted in filters.items():
                value = getattr(clip, name) if hasattr(clip, name) else clip.meta.get(name)
                if callable(wanted):
                    if not wanted(value):
                        return False
                elif isinstance(wanted, (set, frozenset, list, tuple)):
                    if value not in wanted:
                        return False
                elif value != wanted:
                    return False
            return True

        return Corpus([clip for clip in self._clips if matches(clip)], self.info, self.root)

    def ids(self) -> list[str]:
        return [clip.id for clip in self._clips]
