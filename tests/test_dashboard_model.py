"""The dashboard's model side on real tiny.en weights: uploads decoded and checked like the CLI's,
the transcript and per-frame features of a synthesized clip, interventions that change the
transcript, parallel requests with different interventions through the real server, attention,
and `whisperlens serve` itself."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest
import soundfile
import torch

from whisperlens.dashboard.app import create_app
from whisperlens.dashboard.server import serving
from whisperlens.features.bases import NeuronBasis, RandomBasis

from .conftest import synthesize
from .dashboard_run import run_directory, studies


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, corpus):
    return run_directory(tmp_path_factory, corpus)


@pytest.fixture(scope="session")
def app(run_dir):
    app = create_app(run_dir, studies(), max_upload_mb=1)
    app.testing = False
    return app


@pytest.fixture(scope="session")
def fox(tmp_path_factory):
    return synthesize("The quick brown fox jumps over the lazy dog.", tmp_path_factory.mktemp("fox") / "fox.wav")


def _upload(client, path, name=None):
    with open(path, "rb") as file:
        return client.post("/api/clips", data={"audio": (file, name or path.name)})


def test_an_upload_gets_its_transcript_with_word_times_and_features_per_frame(app, fox):
    client = app.test_client()
    uploaded = _upload(client, fox)
    assert uploaded.status_code == 200 and uploaded.json["duration"] == pytest.approx(2.77, abs=0.01)
    assert _upload(client, fox).json["clip"] == uploaded.json["clip"]  # the same audio, the same key
    result = client.get(f"/api/clips/{uploaded.json['clip']}/analysis?site=encoder.blocks.3.hook_resid_post&top=4").json
    words = [w["word"].lower().strip(".") for w in result["words"]]
    assert words == "the quick brown fox jumps over the lazy dog".split()
    starts = [w["start"] for w in result["words"]]
    assert starts == sorted(starts) and result["words"][-1]["end"] <= result["duration"] + 0.1
    assert len(result["features"]) == len(result["values"]) == 139  # one row per 20 ms frame
    assert all(len(row) == 4 and row == sorted(row, reverse=True) for row in result["values"])
    # The per-frame values are the basis's reading of the model's activation there.
    app_state = app.extensions["whisperlens"]["workbench"]
    with app_state.using_model() as model:
        from whisperlens.dashboard.analysis import encoder_activations

        activation = encoder_activations(model, app_state.clip(uploaded.json["clip"]), "encoder.blocks.3.hook_resid_post", True)
    values = activation["encoder.blocks.3.hook_resid_post"][50]
    feature = result["features"][50][0]
    assert values[feature].item() == pytest.approx(result["values"][50][0], abs=1e-3)
    assert values.max().item() == pytest.approx(result["values"][50][0], abs=1e-3)


def test_bad_uploads_get_a_clear_4xx(app, tmp_path, fox):
    client = app.test_client()
    (tmp_path / "notes.mp3").write_text("these are not the droids")
    answer = _upload(client, tmp_path / "notes.mp3")
    assert answer.status_code == 400 and answer.json["error"] == "notes.mp3: not a readable audio file (InvalidDataError)"
    (tmp_path / "empty.wav").write_bytes(b"")
    assert _upload(client, tmp_path / "empty.wav").json == {"error": "empty.wav: the file is empty"}
    soundfile.write(tmp_path / "long.wav", np.zeros(16000 * 31, np.float32), 16000)
    answer = _upload(client, tmp_path / "long.wav")
    assert answer.status_code == 400 and "31.0 s long; the dashboard takes clips of at most 30 s" in answer.json["error"]
    soundfile.write(tmp_path / "big.wav", np.zeros(16000 * 40, np.float32), 16000)  # 1.3 MB over the 1 MB limit
    answer = _upload(client, tmp_path / "big.wav")
    assert answer.status_code == 413 and "larger than the 1 MB limit" in answer.json["error"]
    assert client.post("/api/clips").status_code == 400
    assert client.post("/api/clips", data={"audio": "text, not a file"}).status_code == 400
    # Fuzzed files: random bytes, and real audio cut short or with bytes flipped, under audio names.
    rng = np.random.default_rng(0)
    real = fox.read_bytes()
    blobs = [rng.bytes(int(n)) for n in rng.integers(1, 50_000, 8)]
    blobs += [real[: len(real) // k] for k in (2, 7, 40)]
    blobs += [bytes(b ^ 0xFF if i % 97 == 0 else b for i, b in enumerate(real))]
    for i, blob in enumerate(blobs):
        (tmp_path / f"fuzz{i}.{['wav', 'mp3', 'flac', 'ogg'][i % 4]}").write_bytes(blob)
        answer = _upload(client, tmp_path / f"fuzz{i}.{['wav', 'mp3', 'flac', 'ogg'][i % 4]}")
        assert answer.status_code in (200, 400), (i, answer.status_code)
        assert answer.status_code == 200 or answer.json["error"].startswith(f"fuzz{i}.")
    assert _upload(client, fox).status_code == 200  # and the server goes on


POKES = {
    "band": {"interventions": [{"kind": "attention_mask", "stack": "encoder", "half_width": 0}]},
    "head": {"interventions": [{"kind": "skip_layers", "stack": "encoder", "layers": [0, 1]}]},
    "steer": {"steer": [{"feature": "encoder.blocks.3.hook_resid_post:5", "scale": 40}]},
    "none": {},
}


def _poke(base: str, clip: str, body: dict) -> str:
    request = urllib.request.Request(f"{base}/api/clips/{clip}/poke", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)["text"]


def test_parallel_requests_with_different_interventions_each_get_their_own_result(app, fox):
    key = _upload(app.test_client(), fox).json["clip"]
    with serving(app) as base:
        alone = {name: _poke(base, key, body) for name, body in POKES.items()}
        assert len(set(alone.values())) == len(POKES)  # each intervention changes the transcript its own way
        assert "fox" in alone["none"].lower()
        together: dict[str, list[str]] = {name: [] for name in POKES}
        threads = [threading.Thread(target=lambda n=name: together[n].append(_poke(base, key, POKES[n])))
                   for name in POKES for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert together == {name: [text, text] for name, text in alone.items()}


def test_removing_a_span_takes_its_word_out_and_reuses_the_encoder_output(app, fox):
    from whisperlens.audio import encoder_positions
    from whisperlens.dashboard.analysis import DECODING, word_removal
    from whisperlens.dashboard.workbench import CLIPS_KEPT, Recent
    from whisperlens.transcripts import padding_features, word_timings

    client = app.test_client()
    key = _upload(client, fox).json["clip"]
    workbench = app.extensions["whisperlens"]["workbench"]
    workbench.encoder_outputs, workbench.baselines = Recent(CLIPS_KEPT), Recent(CLIPS_KEPT)  # as for a new clip
    with workbench.using_model() as model:
        workbench.padding(model)  # the padding-only audio's encoder output, computed once per server
        block_runs = []
        handle = model.encoder.blocks[0].register_forward_hook(lambda module, i, o: block_runs.append(o.shape[1]))
    try:
        analysis = client.get(f"/api/clips/{key}/analysis").json
        # Word times no longer cost a second encoder pass: one 30 s window for the transcript and
        # its alignment, and the clip's own frames for the features.
        assert block_runs == [1500, encoder_positions(len(workbench.clip(key)))]
        dog = analysis["words"][-1]
        assert dog["word"] == "dog."
        block_runs.clear()
        answer = client.post(f"/api/clips/{key}/poke", json={"remove": [{"start": dog["start"], "end": dog["end"]}]})
        assert block_runs == []  # the plain transcript and the edit both decode the kept encoder output
    finally:
        handle.remove()
    assert answer.status_code == 200, answer.json
    before, after = answer.json["baseline"].lower(), answer.json["text"].lower()
    assert "dog" in before and "dog" not in after and "fox" in after
    first, stop = math.floor(dog["start"] / 0.02 + 1e-6), math.ceil(dog["end"] / 0.02 - 1e-6)  # 20 ms frames
    assert answer.json["interventions"] == [{"kind": "patch", "hook": "encoder.hook_ln_post", "value": None,
                                             "positions": {"start": first, "stop": stop, "step": None},
                                             "source": "the encoder output for padding-only audio"}]
    # The same edit as a plain intervention on openai's transcribe, the encoder run in full each
    # time, gives the same transcripts and word times.
    audio = workbench.clip(key)
    with workbench.using_model() as model:
        removal = word_removal(padding_features(model), slice(first, stop))
        options = dict(language="en", verbose=None, sample_len=len(answer.json["text"]) + 30, **DECODING)
        assert model.transcribe(audio, interventions=[removal], **options)["text"].strip() == answer.json["text"]
        assert word_timings(model.transcribe(audio, word_timestamps=True, **options)) == analysis["words"]


def test_bad_interventions_are_400s(app, fox):
    client = app.test_client()
    key = _upload(client, fox).json["clip"]
    cases = {
        "not json": ("text/plain", "send a JSON object"),
        json.dumps({"interventions": [{"kind": "explode"}]}): ("application/json", "unknown intervention kind 'explode'"),
        json.dumps({"interventions": [{"kind": "skip_layers", "layers": [9]}]}): ("application/json", "out of range"),
        json.dumps({"steer": [{"feature": "nope:1", "scale": 1}]}): ("application/json", "unknown site"),
        json.dumps({"steer": [{"feature": "encoder.blocks.2.mlp.hook_post:1", "scale": "big"}]}): ("application/json", "scale"),
        json.dumps({"interventions": [{}] * 20}): ("application/json", "8 entries at most"),
        json.dumps({"interventions": [{"kind": "steer", "hook": "encoder.blocks.0.hook_resid_post", "vector": [1.0, 2.0]}]}):
            ("application/json", "do not fit this model's activations"),
        json.dumps({"interventions": [{"kind": "patch", "hook": "encoder.blocks.0.hook_resid_post", "source": {"a": [1]}}]}):
            ("application/json", "patch"),
        json.dumps({"remove": [{"start": 1.0}]}): ("application/json", "remove: end is missing"),
        json.dumps({"remove": [{"start": 2.0, "end": 1.0}]}): ("application/json", "span: give start < end"),
        json.dumps({"remove": [{"start": 2.9, "end": 3.5}]}): ("application/json", "within the clip's 2.77 s"),
        json.dumps({"remove": [{"start": -1, "end": 1}]}): ("application/json", "start: must be a number between 0 and 30"),
        json.dumps({"remove": ["0-1"]}): ("application/json", "each remove entry is"),
        json.dumps({"remove": {"start": 0}}): ("application/json", "remove are lists"),
    }
    for body, (kind, message) in cases.items():
        answer = client.post(f"/api/clips/{key}/poke", data=body, headers={"Content-Type": kind})
        assert answer.status_code == 400 and message in answer.json["error"], (body, answer.json)


def test_attention_around_a_frame(app, fox):
    client = app.test_client()
    key = _upload(client, fox).json["clip"]
    answer = client.get(f"/api/clips/{key}/attention?frame=60").json
    assert (answer["layers"], answer["heads"], answer["positions"]) == (4, 6, 139)
    for heads in answer["top"]:
        for top in heads:
            weights = [t["weight"] for t in top]
            assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1.0001
    workbench = app.extensions["whisperlens"]["workbench"]
    from whisperlens.dashboard.analysis import attention_around

    with workbench.using_model() as model:
        patterns = attention_around(model, workbench.clip(key), 60, True)
    assert np.allclose(patterns.sum(-1), 1, atol=1e-4)  # short mode: the clip's frames are all the keys
    assert client.get(f"/api/clips/{key}/attention?frame=139").json["error"] == "frame: this clip has frames 0-138, not 139"
    assert client.get(f"/figures/clip/{key}/attention.png?frame=60").data[:4] == b"\x89PNG"


def test_basis_directions_are_what_steering_adds():
    neurons = NeuronBasis("encoder.blocks.0.mlp.hook_post", 8)
    assert torch.equal(neurons.encode(neurons.direction(3)[None]), torch.eye(8)[3:4])
    random = RandomBasis("encoder.blocks.0.hook_resid_post", 16, 5, seed=1)
    readings = random.encode(torch.stack([random.direction(i) for i in range(5)]))
    assert torch.allclose(readings, torch.eye(5), atol=1e-5)  # orthonormal: each direction reads as its own feature


def test_serve_command_binds_loopback_and_prints_its_url(run_dir):
    process = subprocess.Popen([sys.executable, "-m", "whisperlens", "serve", str(run_dir), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"whisperlens dashboard for {run_dir}: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].split()[0]
        with urllib.request.urlopen(url, timeout=60) as response:
            assert response.status == 200 and b"Features you can listen to" in response.read()
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("arguments, message", [
    (["/no/such/run"], "/no/such/run: no such run directory"),
    (["--port", "70000"], "--port must be 0-65535"),
    (["--max-upload-mb", "0"], "--max-upload-mb must be positive"),
])
def test_serve_refuses_bad_arguments_in_one_line(arguments, message, capsys):
    from whisperlens.cli import main

    assert main(["serve", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"whisperlens: error: {message}") and error.count("\n") == 1
