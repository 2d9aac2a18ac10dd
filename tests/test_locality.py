"""The locality study (issue 8) on the real tiny.en weights: the band mask against no mask, the
per-head statistics under a band, the relevance maps' documented sums, span replacement against
the Patch intervention in a full pass, and the study end to end (the bundled example's word
removal, the perturbation test's most-relevant-first order against a random one)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from whisperlens.audio import encoder_positions
from whisperlens.cli import main
from whisperlens.corpus import CorpusConfig, build_corpus
from whisperlens.corpus.selection import CorpusSelection
from whisperlens.greedy import concat_kv, cross_kv, greedy_decode, replace_kv_positions
from whisperlens.interventions import AttentionMask, Patch
from whisperlens.models.loading import tokenizer_for
from whisperlens.studies.locality import STUDY, LocalityConfig, LocalityResult
from whisperlens.studies.locality.encode import (
    banded_encoder_output,
    block_inputs,
    encode_from,
    reference_log_prob,
    teacher_tokens,
)
from whisperlens.studies.locality.heads import head_locality
from whisperlens.studies.locality.relevance import (
    dense_chefer_row,
    normalised_residual,
    rollout,
    seed_relevance,
    token_relevance,
)
from whisperlens.studies.locality.removal import (
    OUTPUT_HOOK,
    neighbour_lost,
    replace_positions,
    seconds_to_frames,
    word_survives,
)
from whisperlens.studies.locality.targeting import peak_run
from whisperlens.study import ModelSpec, StudyContext, blocks_as_text
from whisperlens.study.runner import run_study
from whisperlens.transcripts import clip_mels, decode, padding_features

# decoding runs many small steps: see conftest.one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fox(speech):
    return SimpleNamespace(id="fox", text="the quick brown fox jumps over the lazy dog", audio=speech["fox"])


@pytest.fixture(scope="module")
def fox_mel(tiny, fox):
    return clip_mels(tiny, [fox])


def test_a_band_of_1500_or_more_equals_no_mask_and_a_resumed_pass_equals_a_full_one(tiny, fox_mel):
    with torch.no_grad():
        clean = tiny.run(fox_mel)
        inputs, clean_output = block_inputs(tiny, fox_mel)
        wide = encode_from(tiny, inputs, 0, [AttentionMask(half_width=1500)])
        narrow_last = encode_from(tiny, inputs, 3, [AttentionMask(layers=[3], heads=[2], half_width=10)])
        with tiny.intervene(AttentionMask(layers=[3], heads=[2], half_width=10)):
            narrow_full = tiny.run(fox_mel)
        narrow_everywhere = encode_from(tiny, inputs, 0, [AttentionMask(half_width=10)])
    torch.testing.assert_close(wide, clean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clean_output, clean)
    torch.testing.assert_close(narrow_last, narrow_full, atol=1e-5, rtol=1e-5)
    assert (narrow_last - clean).abs().max() > 1e-3  # the mask on one head does change the output
    assert (narrow_everywhere - clean).abs().max() > 1e-1
    for k in (10, 200):  # the chunked band of the sweep against the AttentionMask intervention
        with torch.no_grad():
            dense = encode_from(tiny, inputs, 0, [AttentionMask(half_width=k)])
        torch.testing.assert_close(banded_encoder_output(tiny, inputs[0], k), dense, atol=2e-3, rtol=1e-3)


def test_the_study_decoder_gives_openai_decodes_transcripts_and_scores_on_shared_keys(tiny, fox_mel, fox):
    """greedy_decode (finished rows leave the batch; cross-attention keys computed once, or edited)
    against openai's decode on the same encoder outputs: a clean one, one under a k=5 band (a
    near-empty transcript) and one with a span replaced, under a token limit that the clean row reaches
    and the banded row does not."""
    padding = padding_features(tiny)
    with torch.no_grad():
        inputs, clean = block_inputs(tiny, fox_mel)
    looping = banded_encoder_output(tiny, inputs[0], 5)
    edited = replace_positions(tiny, clean, padding, range(20, 40))
    features = torch.cat([clean, looping, edited])
    kv = concat_kv([cross_kv(tiny, torch.cat([clean, looping])),
                    replace_kv_positions(cross_kv(tiny, clean), cross_kv(tiny, padding), 0, range(20, 40))])
    ours = greedy_decode(tiny, kv, 8)
    theirs = decode(tiny, features, 8, timestamps=True)
    assert [(r.text, r.tokens) for r in ours] == [(r.text, list(r.tokens)) for r in theirs]
    assert len(ours[0].tokens) == 8 > len(ours[1].tokens)  # the clean row ran to the limit; the banded row ended
    assert ours[2].text != ours[0].text
    tokenizer = tokenizer_for(tiny)
    tokens, lengths = teacher_tokens(tokenizer, [fox.text] * 3, tiny.dims.n_text_ctx)
    prompt = len(tokenizer.sot_sequence_including_notimestamps)
    with torch.no_grad():
        log_probs = tiny.decoder(tokens, features).log_softmax(-1)
    expected = log_probs[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0][:, prompt - 1: lengths[0] - 1].mean(-1)
    np.testing.assert_allclose(reference_log_prob(tiny, kv, tokens, lengths, prompt), expected.numpy(), atol=1e-4)


def test_under_a_band_of_10_every_head_keeps_its_attention_within_10_frames(tiny, fox):
    with tiny.intervene(AttentionMask(half_width=10)):
        banded = head_locality(tiny, [fox], batch_size=1)
    for scope in ("clip", "padded"):
        np.testing.assert_allclose(banded.get(scope, "within_10"), 1.0, atol=1e-5)
        assert (banded.get(scope, "distance_ms") <= 200 + 1e-3).all()
        assert (banded.get(scope, "within_5") < 1.0).any()  # the band, not a narrower pattern, bounds them


def test_relevance_maps_sum_as_documented(tiny, fox_mel, fox):
    roll = rollout(tiny, fox_mel)
    torch.testing.assert_close(roll.sum(-1), torch.ones(1500), atol=1e-4, rtol=0)
    seed = seed_relevance(tiny, fox_mel)
    off = seed - torch.eye(1500)
    assert off.min() >= 0 and off.sum() > 0  # R = I + non-negative contributions
    n = encoder_positions(len(fox.audio))
    speech_rows = seed[:n, :n].sum(-1) / seed[:n].sum(-1)
    assert speech_rows.mean() > 0.5  # the clip's outputs draw mostly on the clip's own frames
    bar = normalised_residual(seed)
    has_off = off.sum(-1) > 0
    torch.testing.assert_close(bar.sum(-1)[has_off], torch.full((int(has_off.sum()),), 2.0), atol=1e-4, rtol=0)


def test_the_factored_chefer_rule_equals_the_rule_as_written(tiny, fox_mel, fox):
    tokens, _ = teacher_tokens(tokenizer_for(tiny), [fox.text], tiny.dims.n_text_ctx)
    targets = [1, 5]  # after <|startoftranscript|><|notimestamps|>: the first text token's map and a later one's
    fast = token_relevance(tiny, fox_mel, tokens, targets)["chefer"]
    dense = token_relevance(tiny, fox_mel, tokens, targets, row=dense_chefer_row)["chefer"]
    assert dense.abs().max() > 0.1
    torch.testing.assert_close(fast, dense, atol=1e-5, rtol=1e-4)


def test_replacing_positions_of_cached_features_equals_the_patch_intervention_in_a_full_pass(tiny, fox_mel):
    padding = padding_features(tiny)
    with torch.no_grad():
        clean = tiny.run(fox_mel)
        with tiny.intervene(Patch(OUTPUT_HOOK, source={OUTPUT_HOOK: padding}, positions=range(20, 40))):
            patched = tiny.run(fox_mel)
    edited = replace_positions(tiny, clean, padding, range(20, 40))
    torch.testing.assert_close(edited, patched)
    torch.testing.assert_close(edited[0, 20:40], padding[0, 20:40])
    torch.testing.assert_close(edited[0, :20], clean[0, :20])


def test_word_counts_targets_and_spans():
    words = "the cat saw the dog".split()
    assert word_survives("cat", words, "the saw the dog".split()) == (True, True)
    assert word_survives("the", words, "cat saw the dog".split()) == (True, True)  # one of two copies gone
    assert word_survives("cat", words, "the cat saw dog".split()) == (False, False)
    assert neighbour_lost(words, 2, "the saw the dog".split()) and not neighbour_lost(words, 4, "the cat saw the".split())
    assert peak_run(np.array([0, 1, 3, 4, 1, 3, 0.0])) == (2, 4)  # 7 of 12 after the 3 left of the peak
    assert peak_run(np.array([0, 0, 9, 1, 0.0])) == (2, 3) and peak_run(np.array([1.0, 1, 1, 1]), 1.0) == (0, 4)
    assert seconds_to_frames(0.3, 0.5, 100) == (15, 25) and seconds_to_frames(0.3, 0.5, 100, margin=20) == (0, 45)
    assert seconds_to_frames(1.9, 2.5, 100) == (95, 100)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("locality_corpus")
    build_corpus(CorpusConfig(out=root, clips=2, sets=("english",), workers=1), progress=False)
    return root


@pytest.fixture(scope="module")
def study_run(small_corpus, tmp_path_factory):
    config = LocalityConfig(model=ModelSpec("tiny.en"), corpus=CorpusSelection(path=str(small_corpus), clips=2),
                            half_widths=(1500, 10), asterisk=0, stat_clips=1, head_clips=1, removal_words=4, margins=(0,),
                            relevance_clips=2, max_tokens=24)
    folder = tmp_path_factory.mktemp("locality") / "run"
    result, ran = run_study(STUDY, config, folder, StudyContext(folder, progress=False))
    return config, folder, result, ran


def test_the_study_runs_end_to_end_saves_loads_and_renders(study_run, capsys):
    config, folder, result, ran = study_run
    loaded = LocalityResult.load(folder)
    assert ran and loaded == result
    assert blocks_as_text(loaded.views()) == blocks_as_text(result.views())
    s = result.summary
    by_name = {row["name"]: row for row in s["sweep"]}
    assert by_name["all heads, k=1500"]["english"] == by_name["no mask"]["english"]  # a band as wide as the window
    assert by_name["all heads, k=10"]["english"]["log_prob"] < by_name["no mask"]["english"]["log_prob"]
    assert len(s["head_sweep"]) == 24 and len(s["local_heads"]) + len(s["global_heads"]) == 24
    example = s["example"]["transcripts"]
    assert example[0]["half_width"] is None and example[1]["text"] == example[0]["text"]
    for name in ("index.html", "heads.png", "sweep.png", "head_sweep.png", "relevance_example.png", "faithfulness.png",
                 "relevance_tokens.png"):
        assert (folder / name).stat().st_size > 1000
    assert run_study(STUDY, config, folder, StudyContext(folder, progress=False))[1] is False
    assert main(["locality", "show", "--out", str(folder)]) == 0
    assert "k=10" in capsys.readouterr().out


def test_removing_the_span_of_a_word_of_the_bundled_example_drops_it_and_keeps_a_far_word(study_run):
    edits = {e["edit"]: e for e in study_run[2].summary["example"]["edits"]}
    removed = edits["Whisper's timestamps for 'hot questions'"]["text"].lower()
    assert "questions" not in removed and "fox" in removed and "dog" in removed
    first_two = next(e for name, e in edits.items() if name.startswith("Whisper's timestamps for the first two"))
    assert first_two["text"].lower().startswith("the show") or first_two["text"].lower().startswith("is the show")


def test_most_relevant_frames_first_lower_the_reference_faster_than_a_random_order(study_run):
    relevance = study_run[2].summary["relevance"]
    assert relevance["clips"] == 2
    chefer = next(row for row in relevance["faithfulness"] if row["map"] == "chefer")
    assert chefer["most_first_auc"] < relevance["random_auc"] < chefer["least_first_auc"]


# Underscores: this simple_parsing (0.1.9) registers no dash variants of the flags.
@pytest.mark.parametrize("flags", [["--half-widths=-1"], ["--max-tokens", "3"], ["--stat-clips", "0"],
                                   ["--removal-words=-2"], ["--margins=-1"]])
def test_a_bad_flag_is_one_line_and_exit_status_2(flags, tmp_path, capsys):
    folder = tmp_path / "out"
    assert main(["locality", "run", *flags, "--out", str(folder), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("whisperlens: error:") and "\n" not in error and "unrecognized" not in error
    assert not folder.exists()


def test_remove_prints_the_original_and_the_edited_transcript(capsys):
    from whisperlens.studies.example import bundled_example

    assert main(["locality", "remove", str(bundled_example()), "--span", "0:50"]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert lines["frames"].strip().startswith("0-50")
    assert "dog" in lines["edited"] and len(lines["edited"].split()) < len(lines["original"].split())
    for flags in (["--span", "9:3"], ["--time", "a:b"], ["--word", "zebra"]):
        assert main(["locality", "remove", str(bundled_example()), *flags]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("whisperlens: error:") and "\n" not in error
