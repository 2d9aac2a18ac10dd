"""The probes study: held-out splits, control tasks, a planted probe, and real tiny.en weights on
a small synthesized corpus of English, es/fr/de and non-speech clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whisperlens.cli import main
from whisperlens.corpus import Corpus, CorpusConfig, build_corpus
from whisperlens.corpus.selection import CorpusSelection
from whisperlens.studies.probes import STUDY, ProbesConfig, ProbesResult
from whisperlens.studies.probes.collect import FrameSample
from whisperlens.studies.probes.controls import control_labels, random_whisper
from whisperlens.studies.probes.fit import majority_score, probe_score
from whisperlens.studies.probes.splits import group_folds, shared_groups
from whisperlens.studies.probes.tasks import TASKS, clip_examples
from whisperlens.study import StudyContext, blocks_as_text
from whisperlens.study.runner import run_study

SETS = ("english", "multilingual", "nonspeech")


@pytest.fixture(scope="module")
def probe_corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("probe-corpus")
    # 30 per set: 30 English clips over the 9 voices, 10 each of es/fr/de, 30 non-speech (8 kinds)
    build_corpus(CorpusConfig(out=root, clips=30, sets=SETS, workers=1), progress=False)
    return Corpus.open(root)


def small_config(corpus: Corpus, **overrides) -> ProbesConfig:
    settings = dict(corpus=CorpusSelection(path=str(corpus.root), sets=SETS), frames_per_class=20, batch_size=16)
    return ProbesConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def small_run(probe_corpus, tmp_path_factory) -> ProbesResult:
    folder = tmp_path_factory.mktemp("probes") / "run"
    result, ran = run_study(STUDY, small_config(probe_corpus), folder, StudyContext(folder, progress=False))
    assert ran
    return result


def task_scores(result: ProbesResult, name: str) -> dict:
    return next(task for task in result.summary["tasks"] if task["name"] == name)


# ---- splits ---------------------------------------------------------------------------------------

def test_folds_never_share_a_group_and_spread_every_class():
    rng = np.random.default_rng(1)
    groups = np.array([f"g{i}" for i in rng.integers(0, 30, 600)])
    labels = np.array([f"class{int(g[1:]) % 3}" for g in groups])  # a group has one class, as a voice has
    folds = group_folds(labels, groups, 3, seed=7)
    assert not shared_groups(groups, folds)
    for fold in range(3):
        train, test = set(groups[folds != fold]), set(groups[folds == fold])
        assert not train & test
        assert set(labels[folds == fold]) == {"class0", "class1", "class2"}  # 10 groups per class, 3 folds
    assert np.array_equal(folds, group_folds(labels, groups, 3, seed=7))
    assert not np.array_equal(folds, group_folds(labels, groups, 3, seed=8))


@pytest.mark.parametrize("name", ["speech", "engine", "voice", "language"])
def test_task_splits_hold_out_voices_or_utterances(probe_corpus, name):
    task = TASKS[name]
    clips = list(probe_corpus)
    examples = clip_examples(task, clips, folds=3)
    folds = group_folds(examples.labels, examples.groups, 3, seed=0)
    for fold in range(3):
        train_clips = [clips[row] for row in examples.rows[folds != fold]]
        test_clips = [clips[row] for row in examples.rows[folds == fold]]
        if task.holds_out == "voice":
            assert not {(c.engine, c.voice) for c in train_clips} & {(c.engine, c.voice) for c in test_clips}
        else:
            assert not {c.text for c in train_clips} & {c.text for c in test_clips}


# ---- probes and controls on a planted case --------------------------------------------------------

def test_planted_label_is_found_and_its_control_is_not():
    rng = np.random.default_rng(0)
    n, dims = 900, 32
    acoustics = rng.normal(size=(n, dims))
    direction = rng.normal(size=dims)
    labels = np.where(acoustics @ direction > 0, "yes", "no")  # linearly encoded
    rotation = np.linalg.qr(rng.normal(size=(dims, dims)))[0]  # the features: the acoustics rotated, plus noise
    features = acoustics @ rotation + 0.1 * rng.normal(size=(n, dims))
    groups = np.array([f"g{i % 30}" for i in range(n)])
    folds = group_folds(labels, groups, 3, seed=0)
    control = control_labels(acoustics, labels, n_clusters=60, seed=0)
    assert set(control) == {"yes", "no"}
    real = probe_score(features, labels, folds, regularization=1.0)
    controlled = probe_score(features, control, folds, regularization=1.0)
    assert real.accuracy > 0.95
    assert controlled.accuracy < real.accuracy - 0.2
    assert majority_score(labels, folds).accuracy < 0.6


def test_frame_sample_keeps_the_smallest_keys_of_each_label():
    rng = np.random.default_rng(3)
    keys = rng.random(1000)
    labels = rng.choice(["a", "b", "c"], size=1000, p=[0.8, 0.15, 0.05])
    sample = FrameSample(per_class=20)
    for start in range(0, 1000, 128):  # batch by batch, as the stream gives them
        part = slice(start, start + 128)
        sample.offer(keys[part], labels[part], row=np.arange(1000)[part])
        assert all(np.sum(sample.columns["label"] == label) <= 20 for label in "abc")
    for label in "abc":
        expected = np.flatnonzero(labels == label)[np.argsort(keys[labels == label])[:20]]
        assert set(sample.columns["row"][sample.columns["label"] == label]) == set(expected)


def test_random_whisper_has_the_shape_but_not_the_weights(tiny):
    state = torch.random.get_rng_state()
    untrained, again = random_whisper(tiny, seed=5), random_whisper(tiny, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left alone
    assert untrained.dims == tiny.dims
    weight = "encoder.blocks.0.mlp.0.weight"
    trained_weights = dict(tiny.named_parameters())
    random_weights = dict(untrained.named_parameters())
    assert random_weights[weight].dtype == trained_weights[weight].dtype
    assert not torch.allclose(random_weights[weight], trained_weights[weight])
    assert torch.equal(random_weights[weight], dict(again.named_parameters())[weight])


# ---- the study, end to end, on real tiny.en weights -----------------------------------------------

def test_speech_is_far_above_majority_and_above_its_control_at_the_last_layer(small_run):
    speech = task_scores(small_run, "speech")
    last = small_run.summary["sites"].index("layer 3")
    accuracy = speech["trained"]["accuracy"][last]
    assert accuracy >= 0.9 and accuracy >= speech["majority"] + 0.2
    assert speech["trained"]["control"][last] < accuracy - 0.1


def test_result_saves_loads_and_renders(small_run):
    assert ProbesResult.load(small_run.folder) == small_run
    text = blocks_as_text(small_run.views())
    assert "phone confusion" in text.lower() and "selectivity" in text
    for name in ("index.html", "accuracy.png", "selectivity.png", "phone_confusion.png"):
        assert (small_run.folder / name).stat().st_size > 0
    assert [task["name"] for task in small_run.summary["tasks"]] == list(TASKS)
    assert small_run.summary["models"] == ["trained", "random"]
    assert small_run.summary["padded_clips"] == 0 and small_run.summary["positions_per_clip"] == [100]


def test_the_same_seed_gives_the_same_result(probe_corpus, tmp_path):
    config = small_config(probe_corpus, tasks=("speech", "speech_frames"), random_model=False)
    first, _ = run_study(STUDY, config, tmp_path / "first", StudyContext(tmp_path / "first", progress=False))
    second, _ = run_study(STUDY, config, tmp_path / "second", StudyContext(tmp_path / "second", progress=False))
    assert first.summary == second.summary
    assert all(np.array_equal(first.arrays[k], second.arrays[k]) for k in first.arrays)
    other, _ = run_study(STUDY, small_config(probe_corpus, tasks=("speech",), random_model=False, seed=1),
                         tmp_path / "other", StudyContext(tmp_path / "other", progress=False))
    assert other.summary["tasks"][0] != first.summary["tasks"][0]  # the seed does choose the folds and controls


@pytest.mark.parametrize("flags, message", [
    (["--tasks", "colour"], "unknown task 'colour'"),
    (["--folds", "1"], "--folds must be"),
    (["--regularization", "0"], "--regularization must be positive"),
])
def test_bad_flag_is_one_line_and_exit_status_2(flags, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["probes", "run", "--out", str(out), "--no-progress", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
    assert not out.exists()


def test_a_task_without_its_labels_says_which_sets_it_needs(probe_corpus, tmp_path, capsys):
    out = tmp_path / "out"
    flags = ["--corpus", str(probe_corpus.root), "--sets", "english", "--tasks", "speech"]
    assert main(["probes", "run", "--out", str(out), "--no-progress", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert "task 'speech' needs" in error and "nonspeech" in error and "\n" not in error
    assert not out.exists()
