"""Real recordings for a Corpus: Asterisk's prompts, a folder of audio files, or a Hugging
Face `datasets` audio dataset. Audio is decoded on first use with whisperlens.audio.

Each loader returns `Recordings`: clip records in the shape of a built corpus's manifest and
a loader per clip, which `Corpus.from_asterisk`, `from_folder` and `from_hf_dataset` turn
into a Corpus. This module knows nothing of Corpus or Clip, so corpus.py can import it.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import WhisperLensError

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
ASTERISK_DOCS = Path("/usr/share/doc")
ASTERISK_LANGUAGES = ("en", "es", "fr")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".g722", ".aac", ".webm")
NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
SYMBOL_WORDS = {"#": "pound", "*": "star", "&": "and", "%": "percent"}


@dataclass
class Recordings:
    """Clips before they are a Corpus: records as `Clip.from_record` reads them (id, set,
    engine, voice, language, text, duration, words, phones, meta), a loader per record, and
    the corpus's info."""

    info: dict
    records: list[dict] = field(default_factory=list)
    loaders: list[Callable[[], np.ndarray]] = field(default_factory=list)

    def add(self, loader: Callable[[], np.ndarray], **record) -> None:
        self.records.append(record)
        self.loaders.append(loader)


def _load(path: Path):
    """A loader that decodes the file on each use: one file decodes in milliseconds, and
    keeping every clip read would hold a whole dataset in memory."""
    def load() -> np.ndarray:
        from ..audio import load_audio  # imported on use: it loads torch

        return load_audio(path)

    return load


def alignment_words(text: str) -> list[str]:
    """A transcript as the lower-case words pocketsphinx's dictionary spells."""
    text = text.lower()
    for symbol, word in SYMBOL_WORDS.items():
        text = text.replace(symbol, f" {word} ")
    text = re.sub(r"\d+", lambda m: " ".join(NUMBER_WORDS[int(d)] for d in m.group()), text)
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text)


def _aligned_labels(audio: np.ndarray, text: str) -> tuple[list, list, bool]:
    from .sphinx import pocketsphinx_align

    result = pocketsphinx_align(audio, alignment_words(text))
    if result is None:
        return [], [], False
    return result[0], result[1], True


# ---- Asterisk -------------------------------------------------------------------------

def asterisk_transcripts(language: str) -> dict[str, str]:
    path = ASTERISK_DOCS / f"asterisk-core-sounds-{language}" / f"core-sounds-{language}.txt.gz"
    if not path.exists():
        raise WhisperLensError(
            f"no Asterisk transcripts for {language!r} ({path}); install the Debian package "
            f"asterisk-core-sounds-{language}"
        )
    transcripts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            prompt_id, separator, text = line.partition(":")
            text = text.strip()
            # Comments, and descriptions of tones rather than words ("[ascending tones]").
            if not separator or line.startswith(";") or not text or text.startswith("["):
                continue
            transcripts[prompt_id.strip()] = text
    return transcripts


def _asterisk_folder(language: str) -> Path:
    folders = sorted(ASTERISK_SOUNDS.glob(f"{language}_*")) if ASTERISK_SOUNDS.is_dir() else []
    if not folders:
        raise WhisperLensError(
            f"no Asterisk prompts for {language!r} under {ASTERISK_SOUNDS}; install the Debian package "
            f"asterisk-core-sounds-{language}-g722 (16 kHz) or asterisk-core-sounds-{language}-wav"
        )
    return folders[0].resolve()  # es_MX is a link to es_MX_f_Allison: name the speaker


def asterisk_recordings(language: str = "en", align: bool | None = None, cache_dir: str | Path | None = None,
                        prompts: list[str] | None = None) -> Recordings:
    """Asterisk's recorded prompts with their transcripts. English and Spanish are read by
    one speaker (Allison), French by another; `meta["prompt_id"]` is the name shared across
    languages and `meta["in_all_languages"]` says whether all three have it.

    English prompts get pocketsphinx word and phone alignments (align=True, the default for
    English), computed once and cached beside the default corpus. `prompts` keeps only
    those prompt IDs.
    """
    if language not in ASTERISK_LANGUAGES:
        raise WhisperLensError(f"Asterisk prompts exist in {', '.join(ASTERISK_LANGUAGES)}, not {language!r}")
    align = (language == "en") if align is None else align
    folder = _asterisk_folder(language)
    transcripts = asterisk_transcripts(language)
    shared_ids = set(transcripts)
    if prompts is not None:
        transcripts = {prompt: transcripts[prompt] for prompt in prompts if prompt in transcripts}
    for other in ASTERISK_LANGUAGES:
        try:
            shared_ids &= set(asterisk_transcripts(other))
        except WhisperLensError:
            shared_ids = set()
    labels = _asterisk_alignments(language, folder, transcripts, cache_dir) if align else {}
    recordings = Recordings({"source": "asterisk", "language": language})
    for prompt_id, text in sorted(transcripts.items()):
        audio_path = _prompt_audio(folder, prompt_id)
        if audio_path is None:
            continue
        words, phones, aligned = labels.get(prompt_id, ([], [], False))
        recordings.add(
            _load(audio_path),
            id=f"asterisk-{language}-{prompt_id}", set="asterisk", engine="recording", voice=folder.name,
            language=language, text=text, duration=_duration(audio_path), words=words, phones=phones,
            meta={"prompt_id": prompt_id, "in_all_languages": prompt_id in shared_ids,
                  "aligned": aligned, "path": str(audio_path)},
        )
    return recordings


def _prompt_audio(folder: Path, prompt_id: str) -> Path | None:
    for suffix in (".g722", ".wav"):  # G.722 is the 16 kHz recording; the .wav is 8 kHz
        path = folder / f"{prompt_id}{suffix}"
        if path.exists():
            return path
    return None


def _duration(path: Path) -> float:
    import soundfile

    if path.suffix == ".g722" and path.with_suffix(".wav").exists():
        path = path.with_suffix(".wav")  # the same recording; libsndfile reads its length at once
    try:
        info = soundfile.info(str(path))
        return info.frames / info.samplerate
    except (RuntimeError, soundfile.LibsndfileError):  # a format libsndfile lacks (G.722): decode it
        from ..audio import SAMPLE_RATE, load_audio

        return len(load_audio(path)) / SAMPLE_RATE


def _asterisk_alignments(language: str, folder: Path, transcripts: dict[str, str], cache_dir) -> dict:
    """pocketsphinx labels per prompt, kept in a JSON cache that grows as prompts are asked for."""
    from importlib.metadata import version

    from .build import default_corpus_dir
    from .storage import write_text_atomically

    cache = Path(cache_dir) if cache_dir else default_corpus_dir().parent
    key = {"language": language, "folder": str(folder), "pocketsphinx": version("pocketsphinx"), "format": 1}
    path = cache / f"asterisk-{language}-alignments.json"
    labels: dict = {}
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            labels = {prompt: tuple(value) for prompt, value in cached["labels"].items()}
    except (OSError, ValueError):
        pass
    missing = [prompt for prompt in sorted(transcripts) if prompt not in labels and _prompt_audio(folder, prompt)]
    if missing:
        from ..audio import load_audio

        for prompt_id in missing:
            labels[prompt_id] = _aligned_labels(load_audio(_prompt_audio(folder, prompt_id)), transcripts[prompt_id])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(path, json.dumps({"key": key, "labels": labels}))
        except OSError:
            pass  # a read-only cache only costs recomputing next time
    return labels


# ---- A folder of audio files -------------------------------------------------------------

def folder_recordings(path: str | Path, language: str | None = None, align: bool = False) -> Recordings:
    """Every audio file under `path` (recursively), with the text of a same-stem .txt file
    as its transcript when there is one. align=True adds pocketsphinx alignments (English)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise WhisperLensError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise WhisperLensError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    recordings = Recordings({"source": "folder", "path": str(root)})
    for audio_path in files:
        transcript_path = audio_path.with_suffix(".txt")
        text = transcript_path.read_text(encoding="utf-8").strip() if transcript_path.exists() else ""
        load = _load(audio_path)
        words, phones, aligned = _aligned_labels(load(), text) if (align and text) else ([], [], False)
        recordings.add(
            load,
            id=str(audio_path.relative_to(root).with_suffix("")), set="folder", engine="recording", voice="",
            language=language, text=text, duration=_duration(audio_path), words=words, phones=phones,
            meta={"path": str(audio_path), "has_transcript": transcript_path.exists(), "aligned": aligned},
        )
    return recordings


# ---- A Hugging Face dataset ------------------------------------------------------------

def hf_dataset_recordings(dataset, split: str | None = None, audio_column: str = "audio",
                          text_column: str | None = "text", language: str | None = None,
                          limit: int | None = None) -> Recordings:
    """Clips from a `datasets` Dataset (or the name of one, loaded with load_dataset).

    The audio column is read undecoded and decoded by whisperlens.audio, so no extra audio
    backend (torchcodec, librosa) is needed.
    """
    try:
        import datasets
    except ImportError:
        raise WhisperLensError("loading a Hugging Face dataset needs the `datasets` package: pip install datasets") from None
    if isinstance(dataset, str):
        try:
            dataset = datasets.load_dataset(dataset, split=split)
        except Exception as error:  # datasets raises many types (network, missing config, ...)
            raise WhisperLensError(f"cannot load dataset {dataset!r}: {error.__class__.__name__}: {str(error)[:200]}") from None
    if isinstance(dataset, datasets.DatasetDict):
        raise WhisperLensError(f"pass split= one of {', '.join(dataset)}")
    if audio_column not in dataset.column_names:
        raise WhisperLensError(f"dataset has no column {audio_column!r}; columns: {', '.join(dataset.column_names)}")
    dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    count = len(dataset) if limit is None else min(limit, len(dataset))
    recordings = Recordings({"source": "hf_dataset"})
    for index in range(count):
        row = dataset[index]
        load = partial(_decode_row_audio, row[audio_column])
        text = str(row.get(text_column, "") or "") if text_column else ""
        extra = {key: value for key, value in row.items() if key != audio_column and isinstance(value, (str, int, float, bool))}
        recordings.add(
            load,
            id=f"hf-{index:06d}", set="hf", engine="recording", voice=str(row.get("speaker_id", "")),
            language=language, text=text, duration=_row_duration(row[audio_column], load), words=[], phones=[],
            meta=extra,
        )
    return recordings


def _row_duration(value: dict, load) -> float:
    """Read from the file's header where libsndfile can; decode otherwise (MP3 in old libsndfile, G.722)."""
    import soundfile

    try:
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value.get("path")
        info = soundfile.info(source)
        return info.frames / info.samplerate
    except (RuntimeError, TypeError, soundfile.LibsndfileError):
        return len(load()) / 16_000


def _decode_row_audio(value: dict) -> np.ndarray:
    from ..audio import load_audio

    if value.get("bytes"):
        suffix = Path(value.get("path") or "audio.wav").suffix or ".wav"
        with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
            handle.write(value["bytes"])
            handle.flush()
            return load_audio(handle.name)
    if value.get("path"):
        return load_audio(value["path"])
    raise WhisperLensError("dataset audio entry has neither bytes nor a path")
