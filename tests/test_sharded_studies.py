"""The corpus-wide studies that score clips or pairs one by one (the locality band sweep, the
layers study's lens and layer removal, the patching override matrix) give the same result in
shards as in one pass: several shards, merged as they finish in reverse order, against one shard.
On a real Ray cluster: tests/test_ray.py."""

from __future__ import annotations

import numpy as np
import pytest

from whisperlens.corpus.build import CorpusConfig, build_corpus
from whisperlens.corpus.selection import CorpusSelection, english_speech
from whisperlens.distributed import ExecutorSpec, runner
from whisperlens.study.context import StudyContext
from whisperlens.study.runner import run_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ONE_PASS = ExecutorSpec(shard_batches=1000)  # every clip (pair) in one shard: the plain pass
ONE_BATCH_SHARDS = ExecutorSpec(shard_batches=1)


@pytest.fixture
def reversed_shards(monkeypatch):
    """The local executor runs its shards last first (so each waits for the earlier ones to merge);
    the shard indices, as run, are recorded."""
    run_here = runner._run_here
    order: list[int] = []

    def last_first(job, todo, on_result, model):
        assert_workers_rebuild_the_items(job)
        order.extend(shard for shard, _ in reversed(todo))
        run_here(job, list(reversed(todo)), on_result, model)

    monkeypatch.setattr(runner, "_run_here", last_first)
    return order


def assert_workers_rebuild_the_items(job) -> None:
    """A local run hands the job the driver's own items; a Ray worker rebuilds them with `items()`,
    which must give the same list."""
    def key(item):
        return getattr(item, "id", None) or (item.pair_id, item.word_a, item.word_b)

    assert job.items_here is not None
    assert [key(item) for item in job.items()] == [key(item) for item in job.items_here]


def run_both(study, make_config, folder) -> tuple:
    """The study in one pass and in shards of one batch; the two results."""
    results = []
    for name, executor in (("one-pass", ONE_PASS), ("sharded", ONE_BATCH_SHARDS)):
        out = folder / name
        result, ran = run_study(study, make_config(executor), out, StudyContext(out, progress=False))
        assert ran
        results.append(result)
    return tuple(results)


def assert_same_result(sharded, one_pass) -> None:
    """Equal summaries (less the seconds each part took) and equal arrays, dtype and all."""
    expected, got = dict(one_pass.summary), dict(sharded.summary)
    expected.pop("seconds"), got.pop("seconds")
    assert got == expected
    assert sharded.arrays.keys() == one_pass.arrays.keys()
    for name, array in one_pass.arrays.items():
        assert sharded.arrays[name].dtype == array.dtype and np.array_equal(sharded.arrays[name], array), name


@pytest.fixture(scope="module")
def english_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded_english")
    build_corpus(CorpusConfig(out=root, clips=3, sets=("english", "nonspeech"), workers=1), progress=False)
    return root


def test_locality_band_sweep_in_shards_equals_one_pass(english_corpus, tiny, reversed_shards, tmp_path):
    """At the sweep (the study's other parts do not shard and cost a minute): the transcripts,
    token-limit flags and log-probabilities, and the rates the summary gives, under each mask."""
    from whisperlens.studies.locality.scoring import clip_counts, rates
    from whisperlens.studies.locality.study import LocalityConfig
    from whisperlens.studies.locality.sweep import global_masks, head_masks, sweep_english

    selection = CorpusSelection(path=str(english_corpus))
    context = StudyContext(tmp_path, progress=False)
    clips = english_speech(context.corpus(selection))
    masks = global_masks((None, 10)) + head_masks(4, 6)[:1]
    outputs = {}
    for executor in (ONE_PASS, ONE_BATCH_SHARDS):
        config = LocalityConfig(corpus=selection, max_tokens=16, batch_size=1, executor=executor)
        outputs[executor.shard_batches] = sweep_english(tiny, clips, masks, config, context, "sweep")
    assert reversed_shards == [0, 2, 1, 0]  # one pass: one shard; then the 3 clips' shards, the last first
    one_pass, sharded = outputs[ONE_PASS.shard_batches], outputs[ONE_BATCH_SHARDS.shard_batches]
    assert sharded == one_pass and len(one_pass) == 3 and len(one_pass[0].texts) == 3
    references = [clip.text for clip in clips]
    assert [rates(clip_counts(references, o), o.log_prob) for o in sharded] == \
        [rates(clip_counts(references, o), o.log_prob) for o in one_pass]
    assert one_pass[1].log_prob != one_pass[0].log_prob  # the band changes the scores: the test can tell runs apart


def test_layers_lens_and_layer_removal_in_shards_equal_one_pass(english_corpus, reversed_shards, tmp_path):
    from whisperlens.studies.layers.study import STUDY, LayersConfig

    def config(executor):  # the tuned lens too: its translators, trained here, travel with the shards
        return LayersConfig(corpus=CorpusSelection(path=str(english_corpus), clips=2),
                            nonspeech_per_kind=1, max_tokens=8, batch_size=1, examples=1, tuned_lens_clips=1,
                            tuned_lens_steps=2, executor=executor)

    one_pass, sharded = run_both(STUDY, config, tmp_path)
    n_nonspeech = one_pass.summary["clips"]["nonspeech"]
    # one pass: a shard each for the lens, the English and the non-speech decodes; then one per clip, the last first
    assert reversed_shards == [0, 0, 0, 1, 0, 1, 0, *range(n_nonspeech - 1, -1, -1)] and n_nonspeech >= 2
    assert_same_result(sharded, one_pass)
    assert one_pass.arrays["lens.tuned_kl"].shape == one_pass.arrays["lens.kl"].shape


def patching_config(corpus, executor):
    """The override matrix alone, on the corpus's two minimal pairs, one pair per batch."""
    from whisperlens.studies.patching.study import PatchingConfig

    return PatchingConfig(corpus=CorpusSelection(path=str(corpus), sets=("minimal_pairs",)), pairs=2, position_pairs=0,
                          window_pairs=0, crosslingual_pairs=0, batch_size=1, executor=executor)


def test_patching_override_matrix_in_shards_equals_one_pass(minimal_pair_corpus, reversed_shards, tmp_path):
    from whisperlens.studies.patching.study import STUDY

    one_pass, sharded = run_both(STUDY, lambda executor: patching_config(minimal_pair_corpus, executor), tmp_path)
    assert reversed_shards == [0, 1, 0]
    assert_same_result(sharded, one_pass)
    assert one_pass.arrays["matrix.normalised"].shape == (2, 4, 4)


def test_an_interrupted_sharded_study_resumes_at_the_next_shard(minimal_pair_corpus, monkeypatch, tmp_path):
    """The override matrix in two shards: interrupted after the first, the rerun (same folder) runs
    only the second, gives the one-pass result, and leaves no checkpoint behind."""
    from whisperlens.studies.patching.study import STUDY

    monkeypatch.setattr(runner, "SAVE_EVERY_S", 0.0)  # checkpoint after every merged shard
    run_here, ran = runner._run_here, []

    def interrupted_after_one(job, todo, on_result, model):
        def first_then_stop(shard, partial):
            on_result(shard, partial)
            raise KeyboardInterrupt

        run_here(job, todo, first_then_stop, model)

    def recorded(job, todo, on_result, model):
        ran.extend(shard for shard, _ in todo)
        run_here(job, todo, on_result, model)

    out = tmp_path / "sharded"
    config = patching_config(minimal_pair_corpus, ONE_BATCH_SHARDS)
    monkeypatch.setattr(runner, "_run_here", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_study(STUDY, config, out, StudyContext(out, progress=False))
    assert len(list((out / "checkpoints").glob("shards-*.npz"))) == 1
    monkeypatch.setattr(runner, "_run_here", recorded)
    resumed, _ = run_study(STUDY, config, out, StudyContext(out, progress=False))
    assert ran == [1]
    assert not (out / "checkpoints").exists()
    one_pass, _ = run_study(STUDY, patching_config(minimal_pair_corpus, ONE_PASS), tmp_path / "one-pass",
                            StudyContext(tmp_path / "one-pass", progress=False))
    assert_same_result(resumed, one_pass)
