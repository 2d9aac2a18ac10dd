"""Shared fixtures: the real tiny.en weights and speech synthesized offline with flite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import whisperlens
from whisperlens.audio import load_audio
from whisperlens.corpus import Corpus, CorpusConfig, build_corpus
from whisperlens.corpus.selection import CorpusSelection
from whisperlens.features.build import label_store
from whisperlens.features.harvest import HarvestConfig, harvest
from whisperlens.features.store import FeatureStore
from whisperlens.models.loading import load_checkpoint

SENTENCES = {
    "fox": "The quick brown fox jumps over the lazy dog.",
    "weather": "It will rain in the morning and clear up by noon.",
    "kitchen": "Please put the red cups back on the kitchen shelf.",
    "numbers": "She bought seven apples and three large oranges.",
}


def synthesize(text: str, path: Path, voice: str = "kal16") -> Path:
    if shutil.which("flite") is None:
        pytest.fail("flite is not installed: run `bash scripts/setup.sh --test`")
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("speech")
    for name, text in SENTENCES.items():
        synthesize(text, directory / f"{name}.wav")
    return directory


@pytest.fixture(scope="session")
def speech(speech_dir) -> dict[str, np.ndarray]:
    return {name: load_audio(speech_dir / f"{name}.wav") for name in SENTENCES}


@pytest.fixture(scope="session")
def tiny():
    torch.manual_seed(0)
    return whisperlens.load_model("tiny.en")


@pytest.fixture(scope="session")
def tiny_checkpoint():
    return load_checkpoint("tiny.en")


# ---- a small store of tiny.en features, shared by the features and listening-page tests ------

HOOKS = ("encoder.blocks.2.mlp.hook_post", "encoder.blocks.3.hook_resid_post", "decoder.blocks.1.mlp.hook_post")


def small_config(**overrides) -> HarvestConfig:
    settings = dict(hooks=HOOKS, bases=("neurons", "random"), random_features=64, mode="short", batch_size=7, top_k=6)
    return HarvestConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(CorpusConfig(out=root, clips=30, sets=("english",), workers=1), progress=False)
    return Corpus.open(root)


@pytest.fixture(scope="session")
def minimal_pair_corpus(tmp_path_factory):
    """Two minimal pairs (four clips)."""
    root = tmp_path_factory.mktemp("minimal_pairs")
    build_corpus(CorpusConfig(out=root, clips=4, sets=("minimal_pairs",), workers=1), progress=False)
    return root


@pytest.fixture(scope="session")
def harvested(corpus, tiny):
    return harvest(corpus, small_config(), progress=False, model=tiny)


@pytest.fixture(scope="session")
def store(harvested, corpus, tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    selection = CorpusSelection(path=str(corpus.root), sets=())
    saved = FeatureStore.save(harvested, root, str(corpus.root), extra={"corpus_selection": selection.to_dict()})
    label_store(saved, tiny)
    return saved


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module that decodes: decoding is many small steps, and on a
    2-core machine shared with other work two torch threads spin waiting on each other at each."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
