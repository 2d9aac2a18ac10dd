"""The activation stream and corpus selections, on real tiny.en weights and a small corpus
synthesized with the corpus builder (clips cut to different lengths where lengths matter)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from whisperlens.audio import N_ENCODER_FRAMES, N_SAMPLES, encoder_positions, log_mel
from whisperlens.corpus import Corpus, CorpusConfig, CorpusSelection, build_corpus
from whisperlens.errors import WhisperLensError
from whisperlens.models.loading import tokenizer_for
from whisperlens.stream import FRAME_SECONDS, ActivationStream, clip_tokens

# Samples kept of each of the first English clips (all are 2 s): batches then mix lengths.
CUTS = (32_000, 9_000, 20_007, 100, 32_000, 16_000, 641, 25_000)
HOOKS = ["encoder.blocks.0.hook_resid_post", "encoder.blocks.3.mlp.hook_post"]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(CorpusConfig(out=root, clips=10, sets=("english", "nonspeech"), workers=1), progress=False)
    return root


def cut(clip, n_samples: int):
    audio = clip.audio[:n_samples]
    return dataclasses.replace(clip, duration=n_samples / 16_000, _load_audio=lambda: audio)


@pytest.fixture(scope="module")
def varied(corpus_dir) -> Corpus:
    english = Corpus.open(corpus_dir).select(set="english")
    return Corpus([cut(english[i], n) for i, n in enumerate(CUTS)], english.info, english.root)


def test_encoder_positions_cover_every_sample_within_30_s():
    assert encoder_positions(0) == 1  # an empty clip still gets a position
    assert [encoder_positions(n) for n in (1, 320, 321, 640, 32_000)] == [1, 1, 2, 2, 100]
    assert encoder_positions(N_SAMPLES) == N_ENCODER_FRAMES == 1500
    assert encoder_positions(2 * N_SAMPLES) == 1500


def test_batches_carry_clips_lengths_and_labels(tiny, varied):
    stream = ActivationStream(tiny, varied, HOOKS, batch_size=3)
    batches = list(stream)
    assert len(stream) == len(batches) == 3
    assert [len(batch) for batch in batches] == [3, 3, 2]
    assert [i for batch in batches for i in batch.clip_indices.tolist()] == list(range(len(CUTS)))
    assert [clip_id for batch in batches for clip_id in batch.clip_ids] == varied.ids()
    for batch in batches:
        expected_lengths = [encoder_positions(CUTS[i]) for i in batch.clip_indices]
        assert batch.lengths == expected_lengths
        for hook in HOOKS:
            activation = batch[hook]
            assert activation.dtype == torch.float32 and activation.shape[:2] == (len(batch), max(expected_lengths))
            valid = batch.valid(hook)
            assert torch.equal(valid, torch.cat([activation[row, :n] for row, n in enumerate(expected_lengths)]))
            rows = batch.rows(hook)
            assert rows.offsets.tolist() == np.concatenate([[0], np.cumsum(expected_lengths)]).tolist()
            assert rows.clips.tolist() == [i for i, n in zip(batch.clip_indices, expected_lengths, strict=True) for _ in range(n)]
            assert rows.positions.tolist() == [p for n in expected_lengths for p in range(n)]
        for clip_index, phones, words, n in zip(batch.clip_indices, batch.frame_phones, batch.frame_words, batch.lengths,
                                                 strict=True):
            clip = varied[clip_index]
            assert len(phones) == len(words) == n
            assert phones == clip.frame_phones(n)
            for word, start, end in clip.words:  # the position at each word's middle lies under that word
                middle = int((start + end) / 2 / FRAME_SECONDS)
                if middle < n and start <= (middle + 0.5) * FRAME_SECONDS < end:
                    assert words[middle] == word
            first_word_start = min(start for _, start, _ in clip.words)
            assert all(w is None for p, w in enumerate(words) if (p + 0.5) * FRAME_SECONDS < first_word_start)


def test_exact_mode_equals_each_clip_run_alone(tiny, varied):
    batches = list(ActivationStream(tiny, varied[:5], HOOKS, mode="exact", batch_size=3))
    for batch in batches:
        for row, (clip_index, n) in enumerate(zip(batch.clip_indices, batch.lengths, strict=True)):
            with torch.inference_mode():
                _, alone = tiny.run_with_cache(log_mel(varied[clip_index].audio), names_filter=HOOKS)
            for hook in HOOKS:
                expected = alone[hook][0, :n]
                torch.testing.assert_close(batch[hook][row, :n], expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_short_mode_cuts_each_batch_to_its_longest_clip(tiny, varied):
    one_by_one = list(ActivationStream(tiny, varied[:4], HOOKS, mode="short", batch_size=1))
    batched = next(iter(ActivationStream(tiny, varied[:4], HOOKS, mode="short", batch_size=4)))
    assert batched[HOOKS[0]].shape[1] == max(batched.lengths) == 100
    for single in one_by_one:
        clip = varied[int(single.clip_indices[0])]
        with torch.inference_mode():
            _, alone = tiny.run_with_cache(log_mel(clip.audio, short=True), names_filter=HOOKS, short_audio=True)
        for hook in HOOKS:
            assert single[hook].shape[1] == single.lengths[0] == alone[hook].shape[1]
            torch.testing.assert_close(single[hook], alone[hook], rtol=1e-4, atol=1e-4 * float(alone[hook].abs().max()))
    # The longest clip of a batch sees no padding, so batching leaves it as it is alone; a
    # shorter one's attention also reaches the silence it is padded with.
    longest = batched.lengths.index(100)
    for hook in HOOKS:
        scale = float(one_by_one[longest][hook].abs().max())
        torch.testing.assert_close(batched[hook][longest], one_by_one[longest][hook][0], rtol=1e-4, atol=1e-4 * scale)
    short_row = batched.lengths.index(encoder_positions(CUTS[1]))
    assert not torch.allclose(batched[HOOKS[1]][short_row, : batched.lengths[short_row]], one_by_one[short_row][HOOKS[1]][0],
                              atol=1e-3)


def test_teacher_forcing_gives_token_batches(tiny, varied):
    hooks = ["decoder.blocks.0.mlp.hook_post", "encoder.blocks.1.hook_resid_post"]
    tokenizer = tokenizer_for(tiny)
    batch = next(iter(ActivationStream(tiny, varied, hooks, batch_size=3, teacher_forcing=True)))
    sequences = [clip_tokens(tokenizer, varied[i].text, tiny.dims.n_text_ctx) for i in batch.clip_indices]
    assert batch.token_lengths == [len(sequence) for sequence in sequences]
    assert batch.tokens.dtype == torch.long and batch.tokens.shape == (3, max(batch.token_lengths))
    for row, sequence in enumerate(sequences):
        assert batch.tokens[row, : len(sequence)].tolist() == sequence
        start = list(tokenizer.sot_sequence_including_notimestamps)
        assert sequence[: len(start)] == start
        assert set(batch.tokens[row, len(sequence):].tolist()) <= {tokenizer.eot}
    assert batch[hooks[0]].shape == (3, max(batch.token_lengths), 4 * tiny.dims.n_text_state)
    assert batch.valid(hooks[0]).shape == (sum(batch.token_lengths), 4 * tiny.dims.n_text_state)
    assert batch.rows(hooks[0]).positions.tolist() == [p for n in batch.token_lengths for p in range(n)]
    assert batch.valid(hooks[1]).shape == (sum(batch.lengths), tiny.dims.n_audio_state)
    with pytest.raises(WhisperLensError, match="teacher_forcing"):
        ActivationStream(tiny, varied, hooks)


def test_start_resumes_at_a_clip(tiny, varied):
    whole = list(ActivationStream(tiny, varied, HOOKS[:1], batch_size=3))
    resumed = ActivationStream(tiny, varied, HOOKS[:1], batch_size=3, start=3)
    assert len(resumed) == 2
    resumed_batches = list(resumed)
    assert [batch.clip_indices.tolist() for batch in resumed_batches] == [[3, 4, 5], [6, 7]]
    for again, original in zip(resumed_batches, whole[1:], strict=True):
        assert torch.equal(again[HOOKS[0]], original[HOOKS[0]])
    assert [b.clip_indices.tolist() for b in ActivationStream(tiny, varied, HOOKS[:1], batch_size=3, start=7)] == [[7]]
    assert list(ActivationStream(tiny, varied, HOOKS[:1], start=len(CUTS))) == []
    with pytest.raises(WhisperLensError, match="start"):
        ActivationStream(tiny, varied, HOOKS[:1], start=len(CUTS) + 1)


def test_globs_and_aliases_resolve_to_hook_names(tiny, varied):
    stream = ActivationStream(tiny, varied[:2], ["encoder.blocks.*.hook_resid_post", "encoder.blocks.1.mlp.1"],
                              dtype=torch.float16)
    expected = [f"encoder.blocks.{i}.hook_resid_post" for i in range(4)] + ["encoder.blocks.1.mlp.hook_post"]
    assert stream.hooks == expected
    batch = next(iter(stream))
    assert list(batch.activations) == expected
    assert batch["encoder.blocks.1.mlp.1"] is batch["encoder.blocks.1.mlp.hook_post"]
    assert batch["encoder.blocks.1.mlp.1"].dtype == torch.float16


@pytest.mark.parametrize("hooks, options, message", [
    (["encoder.blocks.9.mlp.hook_post"], {}, "unknown hook"),
    (["encoder.blocks.0.nothing"], {}, "unknown hook"),
    (["encoder.blocks.0.attn.hook_pattern"], {}, "not an activation per position"),
    (["encoder.blocks.0.*"], {}, "not an activation per position"),
    (HOOKS, {"mode": "fast"}, "mode must be one of"),
    (HOOKS, {"batch_size": 0}, "batch size must be positive"),
])
def test_bad_stream_arguments_are_clear_errors(tiny, varied, hooks, options, message):
    with pytest.raises(WhisperLensError, match=message):
        ActivationStream(tiny, varied, hooks, **options)


@pytest.mark.parametrize("stop_early, logits_computed", [(True, 0), (False, 1)])
def test_stop_early_skips_the_rest_of_the_pass(tiny, varied, stop_early, logits_computed):
    calls = []
    with tiny.hooks(fwd=[("decoder.hook_logits", lambda activation, point: calls.append(point.name))]):
        list(ActivationStream(tiny, varied[:2], HOOKS, teacher_forcing=True, stop_early=stop_early))
    assert len(calls) == logits_computed


class InterveningModel:
    """tiny.en with an `intervene` that zeroes the named hook points (the shape of the
    interface model.intervene will have), recording when it is in force."""

    def __init__(self, model):
        self.model, self.entered = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    @contextlib.contextmanager
    def intervene(self, *hooks):
        self.entered.append(hooks)
        with self.model.hooks(fwd=[(list(hooks), lambda activation, point: torch.zeros_like(activation))]):
            yield self


def test_interventions_are_in_force_during_each_pass(tiny, varied):
    model = InterveningModel(tiny)
    stream = ActivationStream(model, varied[:4], HOOKS, batch_size=2, interventions=["encoder.blocks.3.mlp.hook_post"])
    batches = list(stream)
    assert model.entered == [("encoder.blocks.3.mlp.hook_post",)] * 2
    assert all(not batch[HOOKS[1]].any() and batch[HOOKS[0]].any() for batch in batches)
    assert next(iter(ActivationStream(model, varied[:2], HOOKS)))[HOOKS[1]].any()  # none asked for: none applied
    assert len(model.entered) == 2


# ---- corpus selections -----------------------------------------------------------------------


def test_selection_filters_sets_voices_and_counts(corpus_dir):
    everything = Corpus.open(corpus_dir)
    english = CorpusSelection(path=str(corpus_dir)).open()
    assert len(english) == 10 and {clip.set for clip in english} == {"english"}
    assert CorpusSelection(path=str(corpus_dir), sets=()).open().ids() == everything.ids()
    both = CorpusSelection(path=str(corpus_dir), sets=("nonspeech", "english")).open()
    assert both.ids() == everything.ids()  # corpus order, whatever the order of the sets
    assert CorpusSelection(path=str(corpus_dir), sets="nonspeech").open().ids() == everything.select(set="nonspeech").ids()
    assert CorpusSelection(path=str(corpus_dir), clips=3).open().ids() == english.ids()[:3]
    one_each = CorpusSelection(path=str(corpus_dir), per_voice=1).open()
    voices = [(clip.engine, clip.voice) for clip in english]
    assert len(set(voices)) < len(english)  # the fixture repeats voices, so per_voice has work to do
    assert one_each.ids() == [clip.id for i, clip in enumerate(english) if (clip.engine, clip.voice) not in voices[:i]]
    two_each = CorpusSelection(path=str(corpus_dir), per_voice=2, clips=4).open()
    assert two_each.ids() == [clip.id for i, clip in enumerate(english) if voices[:i].count(voices[i]) < 2][:4]


def test_selection_key_follows_the_clips(corpus_dir, tmp_path):
    selection = CorpusSelection(path=str(corpus_dir), clips=5)
    key = selection.key(selection.open())
    assert len(key) == 16 and key == selection.key(selection.open())
    assert CorpusSelection(path=str(corpus_dir), clips=6).key(CorpusSelection(path=str(corpus_dir), clips=6).open()) != key
    assert CorpusSelection(path=str(corpus_dir), per_voice=1, clips=5).key(
        CorpusSelection(path=str(corpus_dir), per_voice=1, clips=5).open()) != key
    moved = shutil.copytree(corpus_dir, tmp_path / "moved")
    elsewhere = CorpusSelection(path=str(moved), clips=5)
    assert elsewhere.key(elsewhere.open()) == key  # the same clips of the same build, in another folder


def test_selection_round_trips_through_json(corpus_dir):
    selection = CorpusSelection(path=corpus_dir, sets=("english", "nonspeech"), clips=7, per_voice=2)
    assert selection.path == str(corpus_dir)
    again = CorpusSelection.from_dict(json.loads(json.dumps(selection.to_dict())))
    assert again == selection and again.open().ids() == selection.open().ids()
    assert CorpusSelection.from_dict({}) == CorpusSelection()


@pytest.mark.parametrize("options, message", [
    ({"clips": 0}, "clips must be a positive"),
    ({"per_voice": -1}, "--per-voice must be a positive"),
    ({"clips": 2.5}, "clips must be a positive"),
    ({"sets": ("english", "")}, "corpus sets must be set names"),
])
def test_bad_selections_are_clear_errors(options, message):
    with pytest.raises(WhisperLensError, match=message):
        CorpusSelection(**options)


def test_opening_a_missing_corpus_or_set_is_a_clear_error(corpus_dir, tmp_path):
    with pytest.raises(WhisperLensError, match="no corpus there"):
        CorpusSelection(path=str(tmp_path / "nowhere")).open()
    with pytest.raises(WhisperLensError, match="no clips in set 'multilingual'.*english, nonspeech"):
        CorpusSelection(path=str(corpus_dir), sets=("english", "multilingual")).open()
    with pytest.raises(WhisperLensError, match="unknown corpus selection field 'set'"):
        CorpusSelection.from_dict({"set": "english"})
