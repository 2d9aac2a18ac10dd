"""Mergeable work (whisperlens.distributed) without Ray: every corpus-wide reduction cut into
shards and merged equals one pass, byte for byte; a driver interrupted between shards resumes
from the merged ones. The same jobs on a real Ray cluster: tests/test_ray.py."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from whisperlens.cli import main
from whisperlens.corpus.selection import CorpusSelection, corpus_key
from whisperlens.distributed import ExecutorSpec, ModelRequest, run_sharded, shard_ranges
from whisperlens.features.harvest import collect_activations, harvest
from whisperlens.features.sharded import (
    HarvestJob,
    VectorSample,
    collect_activations_sharded,
    harvest_sharded,
    model_request,
)
from whisperlens.features.stats import SiteStats, frame_priorities
from whisperlens.studies.probes.collect import collect
from whisperlens.studies.probes.sharded import collect_sharded
from whisperlens.study.config import fingerprint

from .conftest import small_config

# ---- the statistics' merge, on synthetic frames --------------------------------------------


def synthetic_clips(n_clips: int = 14, n_features: int = 24, seed: int = 0):
    """Per clip: (values (frames, features), phones). Values on a coarse grid, so that clip maxima
    tie across clips and the top-k's tie-break (the earlier clip) decides."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n_clips):
        frames = int(rng.integers(2, 12))
        values = np.round(rng.normal(size=(frames, n_features)) * 2) / 2
        clips.append((values.astype(np.float32), rng.integers(0, 5, frames).astype(np.int16)))
    return clips


def stats_of(clips, first: int, last: int, batch: int, k: int = 4) -> SiteStats:
    """Statistics of clips[first:last] (global indices), fed `batch` clips at a time."""
    stats = SiteStats.empty(clips[0][0].shape[1], k, 5)
    for start in range(first, last, batch):
        chosen = range(start, min(start + batch, last))
        values = np.concatenate([clips[c][0] for c in chosen])
        lengths = [len(clips[c][0]) for c in chosen]
        positions = np.concatenate([np.arange(n) for n in lengths]).astype(np.int32)
        indices = np.array(list(chosen), np.int64)
        stats.update(values, np.concatenate([[0], np.cumsum(lengths)]), indices, positions,
                     np.concatenate([clips[c][1] for c in chosen]),
                     frame_priorities(7, np.repeat(indices, lengths), positions))
    return stats


def same_array(got: np.ndarray, expected: np.ndarray) -> bool:
    """Byte for byte, with the same dtype and shape."""
    return got.dtype == expected.dtype and got.shape == expected.shape and got.tobytes() == expected.tobytes()


def assert_same_stats(got: SiteStats, expected: SiteStats) -> None:
    for key, array in expected.finalized().arrays().items():
        other = getattr(got.finalized(), key)
        assert same_array(other, array), key


@pytest.mark.parametrize("seed", range(4))
def test_merged_statistics_equal_one_pass_whatever_the_shards_and_their_order(seed):
    clips = synthetic_clips(seed=seed)
    one_pass = stats_of(clips, 0, len(clips), batch=3)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(clips)), size=4, replace=False)).tolist()
    bounds = list(zip([0, *cuts], [*cuts, len(clips)]))
    shards = [stats_of(clips, a, b, batch=int(rng.integers(1, 4))) for a, b in bounds]  # batched differently
    in_order = shards[0]
    for shard in shards[1:]:
        in_order = in_order.merge(shard)
    assert_same_stats(in_order, one_pass)
    shuffled = [shards[i] for i in rng.permutation(len(shards))]  # shards finishing in any order
    anyhow = shuffled[0]
    for shard in shuffled[1:]:
        anyhow = anyhow.merge(shard)
    assert_same_stats(anyhow, one_pass)
    tree = shards[0].merge(shards[1]).merge(shards[2].merge(shards[3].merge(shards[4])))  # associativity
    assert_same_stats(tree, one_pass)


def test_a_merged_state_keeps_streaming():
    clips = synthetic_clips(seed=9)
    merged = stats_of(clips, 0, 5, batch=2).merge(stats_of(clips, 5, 9, batch=2))
    rest = stats_of(clips, 9, len(clips), batch=2)
    # fed further by the streaming kernel, as a resumed local harvest would
    continued = merged.merge(SiteStats.empty(merged.n_features, merged.k, 5))
    for start in range(9, len(clips), 2):
        chosen = range(start, min(start + 2, len(clips)))
        values = np.concatenate([clips[c][0] for c in chosen])
        lengths = [len(clips[c][0]) for c in chosen]
        positions = np.concatenate([np.arange(n) for n in lengths]).astype(np.int32)
        indices = np.array(list(chosen), np.int64)
        priorities = frame_priorities(7, np.repeat(indices, lengths), positions)
        continued.update(values, np.concatenate([[0], np.cumsum(lengths)]), indices, positions,
                         np.concatenate([clips[c][1] for c in chosen]), priorities)
    assert_same_stats(continued, merged.merge(rest))
    assert_same_stats(continued, stats_of(clips, 0, len(clips), batch=4))


# ---- the harvest, the SAE sample and the probes' pass on tiny.en, here in shards ------------


def selection_of(corpus) -> CorpusSelection:
    return CorpusSelection(path=str(corpus.root), sets=())


def assert_same_harvest(got, expected) -> None:
    assert got.sites.keys() == expected.sites.keys() and got.site_info == expected.site_info
    for name, stats in expected.sites.items():
        for key, array in stats.arrays().items():
            assert same_array(getattr(got.sites[name], key), array), (name, key)
    for key, array in expected.frames.items():
        assert same_array(got.frames[key], array), key
    assert got.clip_ids == expected.clip_ids


@pytest.fixture
def one_pass(corpus, tiny):
    """The one-pass harvest, made here beside the sharded one. (The session's `harvested` can
    differ from a later pass in this process in the last bit of a random-basis value, once other
    tests have run: a BLAS state this process carries, not the merge; see docs/scale.md.)"""
    return harvest(corpus, small_config(), progress=False, model=tiny)


def test_sharded_harvest_equals_one_pass(corpus, tiny, one_pass):
    # 30 clips in batches of 7: shards of one batch each, the last one short
    sharded = harvest_sharded(corpus, selection_of(corpus), small_config(), tiny, ExecutorSpec(shard_batches=1), progress=False)
    assert_same_harvest(sharded, one_pass)


class CountingJob:
    """A shard job that records the shards it runs and can be interrupted at one."""

    def __init__(self, job, interrupt_at: int | None = None):
        self.job, self.interrupt_at, self.started = job, interrupt_at, []
        self.model = job.model

    def fingerprint(self):
        return self.job.fingerprint()

    def open(self, model):
        return self.job.open(model)

    def run(self, state, indices):
        self.started.append(indices[0])
        if indices[0] == self.interrupt_at:
            raise KeyboardInterrupt
        return self.job.run(state, indices)

    def partial_from_arrays(self, arrays):
        return self.job.partial_from_arrays(arrays)


def test_interrupted_driver_resumes_from_the_merged_shards(corpus, tiny, one_pass, tmp_path):
    config = small_config()
    job = HarvestJob(selection_of(corpus), config, model_request(config.model, config.mode, config.device), corpus_key(corpus))
    shards = shard_ranges(len(corpus), 7)
    checkpoint = tmp_path / "shards.npz"
    first = CountingJob(job, interrupt_at=14)
    with pytest.raises(KeyboardInterrupt):
        run_sharded(job=first, shards=shards, checkpoint_path=checkpoint, save_every_s=0, model=tiny)
    assert first.started == [0, 7, 14]
    second = CountingJob(job)
    merged = run_sharded(second, shards, checkpoint_path=checkpoint, save_every_s=0, model=tiny)
    assert second.started == [14, 21, 28]  # the two merged shards are not run again
    for name, stats in one_pass.sites.items():
        assert_same_stats(merged.sites[name], stats)
    # a checkpoint of another job is not resumed from
    other = CountingJob(HarvestJob(job.corpus, small_config(seed=1), job.model, job.corpus_key))
    run_sharded(other, shards, checkpoint_path=checkpoint, save_every_s=0, model=tiny)
    assert other.started == [0, 7, 14, 21, 28]


def test_sharded_sae_sample_equals_collect_activations(corpus, tiny):
    hooks = ["encoder.blocks.3.hook_resid_post", "encoder.blocks.1.hook_resid_post"]
    # about a quarter of the 3,000 frames pass the seeded threshold
    expected = collect_activations(corpus, tiny, hooks, "short", 700, seed=3, batch_size=7, progress=False)
    assert 500 < len(expected[hooks[0]]) <= 700
    request = model_request("tiny.en", "short", "cpu")
    got = collect_activations_sharded(corpus, selection_of(corpus), tiny, request, hooks, "short", 700, 3, 7,
                                      ExecutorSpec(shard_batches=1), progress=False)
    for hook in hooks:
        assert torch.equal(got[hook], expected[hook])


def test_vector_samples_merge_in_order_up_to_the_limit():
    parts = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * i for i, n in enumerate((3, 2, 4))]
    samples = [VectorSample({"h": [part]}, 7) for part in parts]
    expected = np.concatenate(parts)[:7].tobytes()
    assert samples[0].merge(samples[1]).merge(samples[2]).vectors()["h"].tobytes() == expected
    assert samples[0].merge(samples[1].merge(samples[2])).vectors()["h"].tobytes() == expected


def test_sharded_probe_pass_equals_one_pass(corpus, tiny):
    order = sorted(range(len(corpus)), key=lambda i: (corpus[i].duration, -i))  # not the corpus order
    frame_clips = set(order[::2])
    expected = collect(tiny, corpus, order, frame_clips, frames_per_class=6, seed=2, batch_size=4)
    _, per_label = np.unique(expected.frames["label"], return_counts=True)
    assert per_label.max() == 6  # the bound bites: the sample is a choice, not every frame
    got = collect_sharded(corpus, selection_of(corpus), ModelRequest(), order, frame_clips, 6, 2, 4,
                          ExecutorSpec(shard_batches=2), model=tiny)
    for key, array in expected.arrays().items():
        assert same_array(got.arrays()[key], array), key
    assert got.positions == expected.positions and got.padded_clips == expected.padded_clips


def test_executor_is_not_part_of_a_result_fingerprint():
    from whisperlens.studies.probes.study import ProbesConfig

    local = ProbesConfig()
    on_ray = ProbesConfig(executor=ExecutorSpec("ray", "auto", ray_workers=4))
    assert fingerprint("probes", local, "h", 1) == fingerprint("probes", on_ray, "h", 1)
    assert fingerprint("probes", local, "h", 1) != fingerprint("probes", ProbesConfig(seed=1), "h", 1)


@pytest.mark.parametrize("flags, message", [
    (["--executor", "spark"], "invalid choice"),
    (["--ray-address", "127.0.0.1:1"], "--ray-address needs --executor ray"),
    (["--executor", "ray", "--shard-batches", "0"], "--shard-batches must be a positive whole number"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach a Ray cluster at '127.0.0.1:1'"),
])
def test_bad_executor_flags_are_one_line(flags, message, corpus, tmp_path, capsys):
    """Including an address where no cluster listens: one line at once, not Ray's minutes of retries."""
    argv = ["features", "build", "--corpus", str(corpus.root), "--sets", "english", *flags, "--store", str(tmp_path / "s"),
            "--out", str(tmp_path / "out"), "--no-progress"]
    try:
        status = main(argv)
    except SystemExit as exit_info:  # argparse's own errors (an unknown choice)
        status = exit_info.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert message in err.splitlines()[-1] and "Traceback" not in err  # argparse's own errors follow the usage
    assert not (tmp_path / "out").exists() and not (tmp_path / "s").exists()


def test_a_study_that_cannot_reach_its_cluster_leaves_no_folder(minimal_pair_corpus, tmp_path, capsys):
    out = tmp_path / "patching"
    status = main(["patching", "run", "--corpus", str(minimal_pair_corpus), "--sets", "minimal_pairs", "--pairs", "2",
                   "--position-pairs", "0", "--window-pairs", "0", "--crosslingual-pairs", "0", "--executor", "ray",
                   "--ray-address", "127.0.0.1:1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status != 0 and "cannot reach a Ray cluster" in err.splitlines()[-1] and "Traceback" not in err
    assert not out.exists()


def test_the_local_executor_imports_no_ray():
    code = ("import sys, whisperlens.cli, whisperlens.features.build, whisperlens.features.sharded, "
            "whisperlens.studies.probes.study, whisperlens.studies.locality.study, whisperlens.studies.layers.study, "
            "whisperlens.studies.patching.study, whisperlens.distributed; "
            "from whisperlens.distributed import run_sharded; print(json.dumps('ray' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False
