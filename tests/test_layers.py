"""The layers study (issue 10) on the real tiny.en weights: the logit lens against the model's
own logits, the encoder lens and layer skipping against the model run with SkipLayers, the
repetition detector on a configuration that loops, the tuned lens trained on held-out clips,
and the study end to end."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from whisperlens.audio import log_mel
from whisperlens.cli import main
from whisperlens.corpus import CorpusConfig, build_corpus
from whisperlens.corpus.selection import CorpusSelection
from whisperlens.errors import WhisperLensError
from whisperlens.interventions import SkipLayers
from whisperlens.models.loading import tokenizer_for
from whisperlens.stream import clip_tokens
from whisperlens.studies.layers import STUDY, LayersConfig, LayersResult
from whisperlens.studies.layers.lens import run_lens
from whisperlens.studies.layers.metrics import word_splitter
from whisperlens.studies.layers.removal import (
    FULL_MODEL,
    Configuration,
    configurations,
    decode_configurations,
    encoder_features,
    encoder_resid_hooks,
    keep_first,
    skip_one,
)
from whisperlens.studies.layers.tuned import held_out_clips, train_translators, training_set
from whisperlens.study import ModelSpec, StudyContext, blocks_as_text
from whisperlens.study.runner import run_study
from whisperlens.transcripts import EditCounts, clip_mels, edit_counts, is_repetition, looping_ngram, transcribe_clips

TEXTS = {"fox": "the quick brown fox jumps over the lazy dog", "weather": "it will rain in the morning and clear up by noon"}
# The tuned lens trains on these and is evaluated on TEXTS.
HELD_OUT_TEXTS = {"kitchen": "please put the red cups back on the kitchen shelf",
                  "numbers": "she bought seven apples and three large oranges"}


@pytest.fixture(scope="module")
def clips(speech):
    """Two synthesized sentences as clips (what the study reads of a corpus clip)."""
    return [SimpleNamespace(id=name, text=TEXTS[name], audio=speech[name]) for name in TEXTS]


@pytest.fixture(scope="module")
def held_out(speech):
    return [SimpleNamespace(id=name, text=HELD_OUT_TEXTS[name], audio=speech[name]) for name in HELD_OUT_TEXTS]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Decoding runs hundreds of tiny steps; on the shared 2-core machine two torch threads spin
    waiting for each other on each (the study's end-to-end test took 135 s with two, 37 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def normal_texts(tiny, clips):
    """The clips' transcripts from the unmodified model, decoded from log-mels."""
    return transcribe_clips(tiny, clips)


@pytest.fixture(scope="module")
def encoder_pass(tiny, clips):
    """One full encoder pass over the clips: the cache the configurations' features come from."""
    with torch.no_grad():
        mels = clip_mels(tiny, clips)
        _, cache = tiny.run_with_cache(mels, names_filter=encoder_resid_hooks(tiny.dims.n_audio_layer))
    return mels, cache, cache.accumulated_resid("encoder")[0]


def test_edit_counts_split_errors_and_the_loop_detector_finds_back_to_back_ngrams():
    assert edit_counts("a b c".split(), "a x c d d".split()) == EditCounts(substitutions=1, deletions=0, insertions=2)
    counts = edit_counts(list("kitten"), list("sitting"))
    assert (counts.substitutions, counts.deletions, counts.insertions) == (2, 0, 1)
    assert edit_counts([], ["a", "b"]).insertions == 2 and edit_counts(["a"], []).deletions == 1
    assert looping_ngram("the cat the cat the cat".split()) == ("the", "cat")
    assert looping_ngram("x y x y z x y".split()) is None  # two copies in a row are not a loop
    assert looping_ngram([7, 7, 7]) == (7,)
    assert not is_repetition([1, 2, 3], "that that is all".split(), False)
    assert is_repetition([1, 2, 3], ["a"], True)  # ran into the token limit
    words_of = word_splitter()
    assert words_of("...") == [] and words_of("(music)") == []  # Whisper's normaliser alone leaves "."
    assert words_of("A cheaper giant, caught.") == ["a", "cheaper", "giant", "caught"]


def test_configurations_cover_each_family_once():
    names = [c.name for c in configurations(4, 4)]
    assert names == ["full model", "encoder keep 0", "encoder keep 1", "encoder keep 2", "encoder keep 3",
                     "encoder skip 0", "encoder skip 1", "encoder skip 2",
                     "decoder keep 1", "decoder keep 2", "decoder keep 3", "decoder skip 0", "decoder skip 1", "decoder skip 2"]
    assert skip_one("decoder", 3, 4) == keep_first("decoder", 3, 4)  # skipping the last block keeps the first three
    assert keep_first("encoder", 1, 4).removed_fraction == 0.75


def test_logit_lens_at_the_last_layer_is_the_models_own_logits(tiny, clips):
    lens = run_lens(tiny, clips, batch_size=2)
    assert lens.labels[0] == "0 pre" and lens.labels[-1] == "3 post" and len(lens.labels) == 13
    tokenizer = tokenizer_for(tiny)
    prompt = len(tokenizer.sot_sequence_including_notimestamps)
    expected_ranks, expected_top = [], []
    for clip in clips:
        tokens = torch.tensor(clip_tokens(tokenizer, clip.text, tiny.dims.n_text_ctx))
        with torch.no_grad():
            logits = tiny.run(log_mel(clip.audio), tokens)[0]  # the model's own forward pass, one clip
        for position in range(prompt - 1, len(tokens) - 1):
            row = logits[position]
            expected_ranks.append(int((row > row[tokens[position + 1]]).sum()) + 1)
            expected_top.append(int(row.argmax()))
    np.testing.assert_array_equal(lens.rank[-1], expected_ranks)
    np.testing.assert_array_equal(lens.top_tokens[-1], expected_top)
    assert lens.agrees[-1].all() and np.abs(lens.kl[-1]).max() < 1e-4
    assert lens.kl[0].mean() > lens.kl[-2].mean() > 0  # the lens closes in on the output with depth
    assert (lens.rank[-1] == 1).mean() > 0.5  # tiny.en gets most reference tokens right, teacher-forced


@pytest.fixture(scope="module")
def tuned_training(tiny, held_out):
    """The held-out clips' vectors at every point, and translators trained on them."""
    data = training_set(tiny, held_out, batch_size=2, seed=0)
    return data, *train_translators(tiny, data, steps=8, seed=0)


def test_the_tuned_lens_stays_exact_at_the_output_and_beats_the_logit_lens_on_held_out_clips(tiny, clips, held_out,
                                                                                            tuned_training):
    data, translators, training_kl = tuned_training
    tokenizer = tokenizer_for(tiny)
    predicted = sum(len(tokenizer.encode(" " + clip.text)) + 1 for clip in held_out)  # each text token and end-of-text
    assert data.vectors.shape == (13, predicted, tiny.dims.n_text_state)
    lens = run_lens(tiny, clips, batch_size=2, translators=translators)
    # The last point reads the model's own output: its translator starts at the identity and has nothing to learn.
    assert np.abs(lens.tuned_kl[-1]).max() < 1e-4 and lens.tuned_agrees[-1].all()
    assert training_kl[-1] < training_kl[0]
    logit_kl, tuned_kl = lens.kl.mean(1), lens.tuned_kl.mean(1)
    assert (tuned_kl[:-1] < logit_kl[:-1]).all(), (logit_kl, tuned_kl)  # at every other point, on clips it never saw


def test_the_same_seed_trains_the_same_translators(tiny, tuned_training):
    data = tuned_training[0]
    first, again, other = (train_translators(tiny, data, steps=2, seed=seed, batch_tokens=8)[0] for seed in (1, 1, 2))
    assert torch.equal(first.weight, again.weight) and torch.equal(first.bias, again.bias)
    assert not torch.equal(first.weight, other.weight)  # another seed draws other mini-batches


def test_held_out_clips_leave_out_the_evaluated_ones_and_follow_the_seed():
    pool = [SimpleNamespace(id=f"clip{i}") for i in range(20)]
    chosen = held_out_clips(pool, pool[:5], 10, seed=3)
    assert len({clip.id for clip in chosen}) == 10 and not {clip.id for clip in chosen} & {clip.id for clip in pool[:5]}
    assert chosen == held_out_clips(pool, pool[:5], 10, seed=3) != held_out_clips(pool, pool[:5], 10, seed=4)
    with pytest.raises(WhisperLensError, match="has 15 English clips outside"):
        held_out_clips(pool, pool[:5], 16, seed=0)


def test_encoder_lens_at_the_last_layer_gives_the_normal_transcript(tiny, clips, encoder_pass, normal_texts):
    mels, cache, resid = encoder_pass
    with torch.no_grad():
        torch.testing.assert_close(encoder_features(cache, resid, FULL_MODEL), tiny.embed_audio(mels), rtol=0, atol=1e-5)
    assert normal_texts[0].lower().startswith("the quick brown fox")
    assert decode_configurations(tiny, clips, [FULL_MODEL], 48, 2).texts == [normal_texts]


@pytest.mark.parametrize("configuration", [keep_first("encoder", 2, 4), skip_one("encoder", 1, 4)], ids=lambda c: c.name)
def test_encoder_features_from_the_cached_pass_equal_the_model_run_with_skipped_layers(tiny, encoder_pass, configuration):
    mels, cache, resid = encoder_pass
    with torch.no_grad(), tiny.intervene(SkipLayers(configuration.removed, stack="encoder")):
        expected = tiny.embed_audio(mels)
        torch.testing.assert_close(encoder_features(cache, resid, configuration), expected, rtol=0, atol=1e-4)


def test_skipping_no_layer_equals_the_normal_run(tiny, clips, normal_texts):
    nothing_removed = [Configuration(stack, (0, 1, 2, 3), 4) for stack in ("encoder", "decoder")]
    assert all(c.removed == () and c.interventions() == [] for c in nothing_removed)
    assert decode_configurations(tiny, clips, nothing_removed, 48, 2).texts == [normal_texts] * 2
    with tiny.intervene(SkipLayers((), stack="encoder"), SkipLayers((), stack="decoder")):
        assert transcribe_clips(tiny, clips) == normal_texts


def test_a_looping_configuration_is_flagged_and_a_clean_transcript_is_not(tiny, clips):
    words_of = word_splitter()
    fox = clips[:1]
    loop = skip_one("decoder", 2, 4)  # tiny.en without decoder block 2: "The quick brown, fix, fix, fix, ..."
    decodes = decode_configurations(tiny, fox, [FULL_MODEL, loop], 24, 1)
    (clean,), (looping,) = decodes.texts
    assert not is_repetition(decodes.tokens[0][0], words_of(clean), bool(decodes.hit_limit[0, 0]))
    assert looping_ngram(words_of(looping)) is not None, looping  # the words loop, not only the token limit
    assert is_repetition(decodes.tokens[1][0], words_of(looping), bool(decodes.hit_limit[1, 0]))


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers_corpus")
    build_corpus(CorpusConfig(out=root, clips=3, sets=("english", "nonspeech"), workers=1), progress=False)
    return root


def test_the_study_runs_end_to_end_saves_loads_and_renders(small_corpus, tmp_path, capsys):
    config = LayersConfig(model=ModelSpec("tiny.en"), corpus=CorpusSelection(path=str(small_corpus), clips=2),
                          nonspeech_per_kind=1, max_tokens=16, batch_size=4, examples=1, loop_heads="decoder keep 1",
                          tuned_lens_clips=1, tuned_lens_steps=2)
    folder = tmp_path / "layers"
    result, ran = run_study(STUDY, config, folder, StudyContext(folder, progress=False))
    loaded = LayersResult.load(folder)
    assert ran and loaded == result
    assert blocks_as_text(loaded.views()) == blocks_as_text(result.views())  # result.json sorts keys; views must not care
    s = result.summary
    assert s["clips"]["english"] == 2 and s["clips"]["nonspeech"] >= 1
    assert [row["name"] for row in s["configurations"]] == [c.name for c in configurations(4, 4)]
    full, embedding_only = s["configurations"][0], s["configurations"][1]
    assert embedding_only["name"] == "encoder keep 0"
    assert full["english"]["wer"] < embedding_only["english"]["wer"]  # the decoder needs the encoder
    assert embedding_only["english"]["repetition_rate"] == 1.0  # "you, you, you, ..." on every clip
    assert s["lens"]["points"][-1]["top1_agreement"] == 1.0 and s["lens"]["points"][0]["kl"] > 1
    assert result.arrays["english.insertions"].shape == (14, 2)
    tuned = s["lens"]["tuned"]  # trained on the corpus's third English clip, evaluated on the first two
    assert tuned["clips"] == 1 and not set(tuned["clip_ids"]) & set(s["transcripts"]["english"]["ids"])
    assert result.arrays["lens.tuned_kl"].shape == result.arrays["lens.kl"].shape == (13, s["lens"]["tokens"])
    assert result.arrays["lens.tuned_training_kl"].shape == (2,)
    assert s["lens"]["points"][-1]["tuned_top1_agreement"] == 1.0
    traced = s["loop_heads"]
    looping = int(result.arrays["english.repetition"][[r["name"] for r in s["configurations"]].index("decoder keep 1")].sum())
    assert traced["configuration"] == "decoder keep 1" and traced["clips"] == looping
    assert len(traced["heads"]) == (12 if looping else 0)  # block 0's 6 self- and 6 cross-attention heads
    for name in ("index.html", "lens.png", "removal_encoder.png", "removal_decoder.png"):
        assert (folder / name).stat().st_size > 1000
    text = blocks_as_text(result.views())
    assert "encoder keep 0" in text and "whisper-medium" in text and "4.68" in text and "tuned: KL" in text
    assert run_study(STUDY, config, folder, StudyContext(folder, progress=False))[1] is False  # same fingerprint: reused
    assert main(["layers", "show", "--out", str(folder)]) == 0
    assert "decoder skip 2" in capsys.readouterr().out


@pytest.mark.parametrize("flags", [["--max-tokens", "3"], ["--nonspeech-per-kind", "-1"], ["--batch-size", "0"],
                                   ["--loop-heads", "decoder 2"], ["--tuned-lens-clips", "-1"], ["--tuned-lens-steps", "0"]])
def test_a_bad_flag_is_one_line_and_exit_status_2(flags, tmp_path, capsys):
    folder = tmp_path / "out"
    assert main(["layers", "run", *flags, "--out", str(folder), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("whisperlens: error:") and "\n" not in error
    assert not folder.exists()


def test_tracing_loops_of_a_configuration_the_model_lacks_is_an_error(small_corpus, tmp_path, capsys):
    folder = tmp_path / "out"
    assert main(["layers", "run", "--corpus", str(small_corpus), "--loop-heads", "decoder skip 7", "--out", str(folder),
                 "--no-progress"]) == 2
    assert "no such configuration" in capsys.readouterr().err and not folder.exists()
