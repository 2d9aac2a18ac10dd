"""The speech corpus: engines and their alignments, builds (determinism, resuming), the
reader API, the CLI's errors, and the real-recording loaders. Real engines throughout."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from whisperlens.cli import main as cli_main
from whisperlens.corpus import ARPABET, SET_NAMES, Corpus, CorpusConfig, build_corpus, storage
from whisperlens.corpus.align import alignment_report
from whisperlens.corpus.engines import Request, get_engine
from whisperlens.corpus.pairs import EN_ES_PAIRS, MINIMAL_PAIRS
from whisperlens.corpus.sphinx import dictionary_words
from whisperlens.corpus.text import vocabulary
from whisperlens.errors import WhisperLensError

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(clips=40, seed=0)


@pytest.fixture(scope="module")
def small_corpus_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "small"
    build_corpus(CorpusConfig(out=out, **SMALL), progress=False)
    return out


@pytest.fixture(scope="module")
def small_corpus(small_corpus_dir) -> Corpus:
    return Corpus.open(small_corpus_dir)


@pytest.fixture(scope="module")
def english_corpus(tmp_path_factory) -> Corpus:
    """Enough English clips that every voice has three or more (espeak-ng "en" is rarest)."""
    out = tmp_path_factory.mktemp("corpus") / "english"
    build_corpus(CorpusConfig(out=out, clips=200, seed=1, sets=("english",)), progress=False)
    return Corpus.open(out)


# ---- engines -------------------------------------------------------------------------------

@pytest.mark.parametrize("engine_name", ["flite", "festival", "espeak"])
def test_every_engine_voice_gives_one_interval_per_word_in_order(engine_name):
    engine = get_engine(engine_name)
    voices = [voice for voice in engine.voices if engine_name != "espeak" or voice.startswith("en")]
    results = engine.synthesize_batch([Request("the the dog ran to the big house", voice) for voice in voices])
    for voice, synthesis in zip(voices, results, strict=True):
        assert [word for word, _, _ in synthesis.words] == "the the dog ran to the big house".split(), voice
        starts = [start for _, start, _ in synthesis.words]
        assert starts == sorted(starts) and all(end > start for _, start, end in synthesis.words), voice
        assert set(phone for phone, _, _ in synthesis.phones) <= set(ARPABET), voice
        assert synthesis.words[-1][2] <= len(synthesis.audio) / 16000 + 0.05, voice


def test_espeak_splits_the_word_pairs_it_merges():
    # espeak-ng reports "of the" and "in a" as one word event each.
    synthesis = get_engine("espeak").synthesize(Request("of the people in a house", "en-us"))
    words = synthesis.words
    assert [word for word, _, _ in words] == ["of", "the", "people", "in", "a", "house"]
    for (_, _, end), (_, start, _) in itertools.pairwise(words):
        assert start >= end - 1e-6
    phones_of = [p for p, s, e in synthesis.phones if words[0][1] <= s < words[0][2]]
    phones_the = [p for p, s, e in synthesis.phones if words[1][1] <= s < words[1][2]]
    assert phones_of == ["AH", "V"] and phones_the[0] == "DH"


def test_flite_noise_voices_depend_on_the_seed_not_on_history():
    flite = get_engine("flite")
    first = flite.synthesize(Request("a quiet voice", "slt", seed=5)).audio
    flite.synthesize(Request("something else entirely", "slt", seed=9))
    again = flite.synthesize(Request("a quiet voice", "slt", seed=5)).audio
    other_seed = flite.synthesize(Request("a quiet voice", "slt", seed=6)).audio
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other_seed)


def test_shipped_words_are_all_in_pocketsphinx_dictionary():
    missing = sorted(word for word in vocabulary() if word not in dictionary_words())
    assert not missing


def test_minimal_pairs_differ_in_exactly_the_recorded_phone():
    from pocketsphinx import get_model_path

    pronunciations = {}
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as handle:
        for line in handle:
            word, *phones = line.split()
            pronunciations.setdefault(word, [p.rstrip("012") for p in phones])
    assert len(MINIMAL_PAIRS) >= 300
    for word_a, word_b, phone_a, phone_b, _ in MINIMAL_PAIRS:
        a, b = pronunciations[word_a], pronunciations[word_b]
        differences = [(x, y) for x, y in zip(a, b, strict=False) if x != y]  # lengths: asserted next
        assert len(a) == len(b) and differences == [(phone_a, phone_b)], (word_a, word_b)
    assert len(EN_ES_PAIRS) >= 150 and 0 < sum(c for *_, c in EN_ES_PAIRS) < len(EN_ES_PAIRS)


# ---- alignment against pocketsphinx --------------------------------------------------------

# Measured with `whisperlens corpus align` (docs/corpus.md): medians of 9-15 ms per engine.
# The bound leaves room for the small sample a test can afford.
MEDIAN_WORD_BOUNDARY_BOUND_MS = 30.0


def test_engine_word_boundaries_agree_with_pocketsphinx(english_corpus):
    report = alignment_report(english_corpus, per_voice=6)
    for engine in ("flite", "festival", "espeak"):
        row = report["per_engine"][engine]
        assert row["word_boundaries"] >= 10, (engine, row)
        assert row["median_word_ms"] < MEDIAN_WORD_BOUNDARY_BOUND_MS, (engine, row)
    aligned = sum(row["aligned"] for row in report["per_voice"].values())
    sampled = sum(row["clips"] for row in report["per_voice"].values())
    assert aligned >= 0.7 * sampled


# ---- intelligibility ----------------------------------------------------------------------

# Pooled tiny.en WER measured with `whisperlens wer run --per-voice 40` on the default
# build (docs/corpus.md): espeak 53%, festival 36%, flite 34%; single voices 16-55%. The
# bounds allow for the five clips per voice a test can afford.
ENGINE_WER_BOUNDS = {"flite": 0.55, "festival": 0.6, "espeak": 0.8}
VOICE_WER_BOUND = 0.9


def test_tiny_en_understands_every_engine_and_voice(english_corpus):
    import whisperlens
    from whisperlens.corpus.align import sample_per_voice
    from whisperlens.studies.wer import measure_wer

    clips = [clip for voice in sample_per_voice(english_corpus, 5).values() for clip in voice]
    report = measure_wer(whisperlens.load_model("tiny.en"), clips)
    assert len(report["per_voice"]) == 9
    for voice, row in report["per_voice"].items():
        assert row["words"] >= 10 and row["wer"] < VOICE_WER_BOUND, (voice, row)
    for engine, bound in ENGINE_WER_BOUNDS.items():
        assert report["per_engine"][engine]["wer"] < bound, (engine, report["per_engine"][engine])


# ---- builds --------------------------------------------------------------------------------

def test_same_seed_gives_the_same_hash_and_bytes(small_corpus_dir, tmp_path):
    again = tmp_path / "again"
    info = build_corpus(CorpusConfig(out=again, **SMALL), progress=False)
    assert info["hash"] == Corpus.open(small_corpus_dir).hash
    assert (again / storage.MANIFEST).read_bytes() == (small_corpus_dir / storage.MANIFEST).read_bytes()
    other = build_corpus(CorpusConfig(out=tmp_path / "other", clips=40, seed=1, sets=("english",)), progress=False)
    assert other["hash"] != info["hash"]


def test_a_lost_shard_and_a_half_written_file_are_redone_on_resume(small_corpus_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_corpus_dir, copy)
    expected = json.loads((copy / storage.INFO).read_text())["hash"]
    flac, jsonl = storage.shard_files(copy, "english-00000")
    jsonl.unlink()
    flac.write_bytes(b"half a shard")  # a FLAC without its .jsonl is never taken as done
    (copy / storage.SHARDS / f"english-00000.jsonl{storage.TEMPORARY_MARK}123").write_text("{")
    info = build_corpus(CorpusConfig(out=copy, **SMALL), progress=False)
    assert info["hash"] == expected
    assert info["last_build"]["clips_built"] == 40  # only that shard
    assert not [p for p in (copy / storage.SHARDS).iterdir() if storage.TEMPORARY_MARK in p.name]
    corpus = Corpus.open(copy)
    assert np.array_equal(corpus[0].audio, Corpus.open(small_corpus_dir)[0].audio)


def test_a_killed_build_resumes_to_the_same_corpus(small_corpus_dir, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "whisperlens.cli", "corpus", "build", "--clips", "40", "--seed", "0",
               "--out", str(out), "--no-progress", "--workers", "1"]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / storage.SHARDS).glob("*.jsonl")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the build and its worker, mid-build
    process.wait()
    with pytest.raises(WhisperLensError, match="incomplete"):
        Corpus.open(out)
    assert subprocess.run(command, cwd=REPO).returncode == 0
    assert Corpus.open(out).hash == Corpus.open(small_corpus_dir).hash


# ---- the reader ----------------------------------------------------------------------------

def test_corpus_has_every_set_with_consistent_labels(small_corpus):
    assert {clip.set for clip in small_corpus} == set(SET_NAMES)
    english = small_corpus.select(set="english")
    assert len(english) == 40 and len(small_corpus.select(set={"english", "nonspeech"})) == 80
    for clip in small_corpus:
        audio = clip.audio
        assert audio.dtype == np.float32 and audio.shape == (32000,) and clip.duration == 2.0
        assert clip.text == " ".join(word for word, _, _ in clip.words)
        for _, start, end in clip.words + clip.phones:
            assert 0.0 <= start < end <= 2.0
        for _, start, end in clip.phones:  # every phone lies inside a word
            assert any(ws - 1e-4 <= start and end <= we + 1e-4 for _, ws, we in clip.words)
        if clip.words:  # silence before the first word and after the last one
            first, last = int(clip.words[0][1] * 16000), int(clip.words[-1][2] * 16000)
            assert not np.any(audio[last + 200:])
            assert np.abs(audio[first:last]).max() > 0.05
    assert all(not clip.words and clip.meta["kind"] for clip in small_corpus.select(set="nonspeech"))


def test_set_specific_fields(small_corpus):
    pairs = small_corpus.select(set="minimal_pairs")
    by_pair = {}
    for clip in pairs:
        by_pair.setdefault(clip.meta["pair_id"], []).append(clip)
    for members in by_pair.values():
        a, b = sorted(members, key=lambda clip: clip.meta["member"])
        assert a.meta["partner"] == b.text and b.meta["partner"] == a.text
        assert a.meta["contrast"] == b.meta["contrast"] and (a.engine, a.voice) == (b.engine, b.voice)
        assert a.meta["contrast_phone"] in [p for p, _, _ in a.phones]
    en_es = small_corpus.select(set="en_es_pairs")
    assert {clip.language for clip in en_es} == {"en", "es"}
    assert {clip.meta["cognate"] for clip in en_es} == {True, False}
    assert {clip.language for clip in small_corpus.select(set="multilingual")} == {"es", "fr", "de"}
    kinds = {clip.meta["kind"] for clip in small_corpus.select(set="nonspeech")}
    assert {"silence", "white_noise", "pink_noise", "brown_noise", "tone", "chord", "arpeggio", "clicks"} <= kinds


def test_frame_phones_follow_the_phone_intervals(small_corpus):
    clip = small_corpus.select(set="english")[0]
    labels = clip.frame_phones(100)
    assert len(labels) == 100
    for frame, label in enumerate(labels):
        centre = (frame + 0.5) * 0.02
        inside = [phone for phone, start, end in clip.phones if start <= centre < end]
        assert label == (inside[0] if inside else None)
    assert labels[0] is None or clip.phones[0][1] < 0.01
    assert clip.frame_phones(1500)[-1] is None


def test_open_refuses_missing_or_incomplete_corpora(tmp_path, small_corpus_dir):
    with pytest.raises(WhisperLensError, match="no corpus"):
        Corpus.open(tmp_path / "nothing")
    partial = tmp_path / "partial"
    shutil.copytree(small_corpus_dir, partial)
    (partial / storage.INFO).unlink()
    with pytest.raises(WhisperLensError, match="incomplete"):
        Corpus.open(partial)


def test_stats_cli_counts_sets_and_phones(small_corpus_dir, capsys):
    assert cli_main(["corpus", "stats", str(small_corpus_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["set"] == {name: 40 for name in SET_NAMES}
    assert set(stats["phones"]) == set(ARPABET) and sum(v > 0 for v in stats["phones"].values()) >= 35


# ---- CLI errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, message", [
    (["--sets", "nope"], "unknown set 'nope'"),
    (["--clips", "0"], "--clips must be a positive"),
    (["--clips", "-3"], "--clips must be a positive"),
    (["--out", "/proc/whisperlens-corpus"], "cannot write the corpus"),
])
def test_bad_build_arguments_give_one_line_errors(arguments, message, capsys):
    assert cli_main(["corpus", "build", *arguments, "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_a_missing_engine_names_its_debian_package(monkeypatch, tmp_path, capsys):
    flite = get_engine("flite")
    monkeypatch.setattr(type(flite), "soname", "libflite-not-installed.so.1")
    monkeypatch.setattr(flite, "_lib", None)
    assert cli_main(["corpus", "build", "--clips", "5", "--sets", "english", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "apt-get install flite" in capsys.readouterr().err
    from whisperlens.corpus.engines import festival

    monkeypatch.setattr(festival, "FESTIVAL_VOICES", tmp_path / "no-voices")
    with pytest.raises(WhisperLensError, match="festvox-kdlpc16k"):
        festival.ENGINE.check_voice("ked")


def test_stats_of_a_missing_corpus_is_a_clear_error(tmp_path, capsys):
    assert cli_main(["corpus", "stats", str(tmp_path / "none")]) == 2
    assert "no corpus" in capsys.readouterr().err


# ---- real recordings -----------------------------------------------------------------------

def test_asterisk_prompts_share_ids_across_languages():
    spanish = Corpus.from_asterisk("es")
    assert len(spanish) > 400
    shared = spanish.select(in_all_languages=True)
    assert len(shared) >= 400
    french_ids = {clip.meta["prompt_id"] for clip in Corpus.from_asterisk("fr")}
    assert {clip.meta["prompt_id"] for clip in shared} <= french_ids
    clip = spanish.select(prompt_id="auth-thankyou")[0]
    assert clip.text == "Gracias" and clip.audio.dtype == np.float32 and 0.3 < len(clip.audio) / 16000 < 3


def test_asterisk_english_gets_pocketsphinx_alignments(tmp_path):
    corpus = Corpus.from_asterisk("en", cache_dir=tmp_path, prompts=["agent-loginok", "auth-thankyou", "vm-goodbye"])
    assert len(corpus) == 3
    for clip in corpus:
        assert clip.meta["aligned"], clip.id
        assert [w for w, _, _ in clip.words] == clip.text.lower().replace(".", "").replace("!", "").split()
        assert clip.phones and clip.words[-1][2] <= clip.duration + 0.01
    cached = Corpus.from_asterisk("en", cache_dir=tmp_path, prompts=["agent-loginok"])
    assert cached[0].words == corpus.select(prompt_id="agent-loginok")[0].words


def test_folder_loader_reads_audio_and_same_stem_transcripts(small_corpus, tmp_path):
    import soundfile

    clips = small_corpus.select(set="english", engine="flite")[:2]
    for clip in clips:
        soundfile.write(tmp_path / f"{clip.id}.wav", clip.audio, 16000)
    (tmp_path / f"{clips[0].id}.txt").write_text(clips[0].text)
    folder = Corpus.from_folder(tmp_path, language="en", align=True)
    assert [clip.id for clip in folder] == [clip.id for clip in clips]
    assert folder[0].text == clips[0].text and folder[0].meta["aligned"]
    assert [w for w, _, _ in folder[0].words] == clips[0].text.split()
    assert folder[1].text == "" and not folder[1].words
    assert np.allclose(folder[0].audio, clips[0].audio, atol=1e-4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WhisperLensError, match="no audio files"):
        Corpus.from_folder(tmp_path / "empty")


def test_hf_dataset_loader(small_corpus, tmp_path):
    try:
        import datasets
    except ImportError:
        with pytest.raises(WhisperLensError, match="pip install datasets"):
            Corpus.from_hf_dataset("anything")
        return
    import soundfile

    clips = small_corpus.select(set="english")[:2]
    paths = []
    for clip in clips:
        paths.append(str(tmp_path / f"{clip.id}.flac"))
        soundfile.write(paths[-1], clip.audio, 16000)
    dataset = datasets.Dataset.from_dict({"audio": paths, "text": [clip.text for clip in clips]})
    dataset = dataset.cast_column("audio", datasets.Audio(sampling_rate=16000))
    corpus = Corpus.from_hf_dataset(dataset, language="en")
    assert [clip.text for clip in corpus] == [clip.text for clip in clips]
    assert np.allclose(corpus[1].audio, clips[1].audio, atol=1e-4)
    with pytest.raises(WhisperLensError, match="no column"):
        Corpus.from_hf_dataset(dataset, audio_column="speech")
