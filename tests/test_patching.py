"""Activation patching (issue 11): the API on the real tiny.en weights and synthesized speech
(a run patched with its own cache is unchanged; the last encoder layer patched from A gives A's
transcript; the normalised metric is 1 for a full patch and 0 for none; patching composes with
a band mask), its plumbing on a random-weights model, and the study's command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import whisper

import whisperlens
from whisperlens.audio import log_mel_batch
from whisperlens.cli import main
from whisperlens.corpus import CorpusConfig, build_corpus
from whisperlens.corpus.selection import CorpusSelection
from whisperlens.errors import WhisperLensError
from whisperlens.greedy import cross_kv, greedy_decode
from whisperlens.interventions import AttentionMask
from whisperlens.patching import (
    LabelledArray,
    PatchPairs,
    Site,
    activation_patching,
    candidate_tokens,
    component_hook,
    patch_sites,
)
from whisperlens.studies.patching import PatchingResult
from whisperlens.studies.patching.matrix import layer_matrix
from whisperlens.studies.patching.outcome import MAX_TOKENS, outcome_of
from whisperlens.studies.patching.pairs import minimal_pairs, patch_pairs
from whisperlens.transcripts import decode, decoding_options

from .tiny_random import tiny_random_model

LAST = "encoder.blocks.3.hook_resid_post"
EVERY_POSITION = slice(0, 1500)  # all positions, but spelled out: the patch goes through the hook


# decoding runs many small steps: see conftest.one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def transcripts(tiny, speech):
    """tiny.en's own greedy transcripts of the two sentences A (fox) and B (weather)."""
    mels = log_mel_batch([speech["fox"], speech["weather"]])
    return dict(zip(("fox", "weather"), (result.text.strip() for result in decode(tiny, mels)), strict=True))


@pytest.fixture(scope="module")
def pairs(tiny, speech):
    """A = the fox sentence (clean), B = the weather sentence (corrupted): 'The' against 'It'."""
    return PatchPairs.from_audio(tiny, [speech["fox"]], [speech["weather"]], ["The"], ["It"])


class Transcripts:
    """A user metric that decodes each patched encoder output (and reads no logits)."""

    needs_logits = False

    def __init__(self, model):
        self.model, self.texts = model, []

    def __call__(self, run):
        results = whisper.decode(self.model, run.features, decoding_options())
        self.texts += [r.text.strip() for r in results]
        return np.zeros(len(results))


def test_patching_a_run_with_its_own_cache_changes_nothing(tiny, speech, pairs):
    itself = PatchPairs.from_audio(tiny, [speech["weather"]], [speech["weather"]], ["The"], ["It"])
    sites = [Site(component_hook("encoder", 1, "resid_post"), positions=EVERY_POSITION),
             Site(component_hook("encoder", 2, "z"), positions=range(10, 60), heads=(0, 3)),
             Site(component_hook("encoder", 0, "mlp_out"), positions=EVERY_POSITION),
             Site(component_hook("decoder", 1, "cross_attn_out"))]
    measured = patch_sites(tiny, itself, sites)
    np.testing.assert_allclose(measured.patched["logit_diff"][0], measured.corrupt["logit_diff"][0], atol=1e-4)
    # and not because a patch does nothing: the same sites from A move the metric
    moved = patch_sites(tiny, pairs, sites[:1])
    assert abs(moved.patched["logit_diff"][0, 0] - moved.corrupt["logit_diff"][0]) > 1.0


def test_patching_the_last_encoder_layer_from_a_gives_a_transcript(tiny, pairs, transcripts):
    assert transcripts["fox"] != transcripts["weather"]
    for positions in (None, EVERY_POSITION):  # whole (the run is A's from there on) and through the hook
        metric = Transcripts(tiny)
        patch_sites(tiny, pairs, [Site(LAST, positions=positions)], metrics={"text": metric})
        clean, corrupt, patched = metric.texts
        assert (clean, corrupt, patched) == (transcripts["fox"], transcripts["weather"], transcripts["fox"])
    # noising: B's last layer into A's run gives B's transcript
    metric = Transcripts(tiny)
    patch_sites(tiny, pairs, [Site(LAST, positions=EVERY_POSITION)], direction="noise", metrics={"text": metric})
    assert metric.texts[2] == transcripts["weather"]


def test_normalised_metric_is_one_for_a_full_patch_and_zero_for_none(tiny, pairs):
    sites = [Site(LAST, positions=EVERY_POSITION), Site(LAST, positions=[]), Site(LAST)]
    measured = patch_sites(tiny, pairs, sites)
    clean, corrupt = measured.clean["logit_diff"][0], measured.corrupt["logit_diff"][0]
    assert clean > 2 and corrupt < -2  # tiny.en hears 'The' in A and 'It' in B
    np.testing.assert_allclose(measured.normalised()[0], [1.0, 0.0, 1.0], atol=1e-4)
    # a partial patch lies in between, and the noising direction mirrors it
    half = patch_sites(tiny, pairs, [Site(LAST, positions=range(0, 50))]).normalised()[0, 0]
    assert -0.5 < half < 1.5 and abs(half) > 1e-3
    noised = patch_sites(tiny, pairs, sites[:2], direction="noise").normalised()[0]
    np.testing.assert_allclose(noised, [0.0, 1.0], atol=1e-4)


def test_patching_composes_with_a_band_mask(tiny, speech, pairs):
    band = AttentionMask(stack="encoder", half_width=20)
    with_mask = patch_sites(tiny, pairs, [Site(LAST, positions=EVERY_POSITION), Site(LAST, positions=[])],
                            interventions=[band])
    plain = patch_sites(tiny, pairs, [Site(LAST, positions=[])])
    # the mask is on in the clean and corrupted runs: their metric is the masked model's
    with torch.no_grad():
        logits = tiny.run_with_hooks(pairs.clean_mel, pairs.prefix, interventions=[band])[0, -1]
    masked_clean = float(logits[pairs.clean_token[0]] - logits[pairs.corrupt_token[0]])
    assert with_mask.clean["logit_diff"][0] == pytest.approx(masked_clean, abs=1e-3)
    assert abs(with_mask.clean["logit_diff"][0] - plain.clean["logit_diff"][0]) > 0.1
    np.testing.assert_allclose(with_mask.normalised()[0], [1.0, 0.0], atol=1e-4)
    # and it comes off afterwards
    assert not any(m.additive_masks for m in (b.attn for b in tiny.encoder.blocks))


def test_grid_labels_axes_and_draws_heatmaps(tiny, pairs, tmp_path):
    result = activation_patching(tiny, pairs, "resid_post", source_layers=[2, 3], layers=[2, 3],
                                 positions={"first half": range(0, 750), "second half": range(750, 1500)})
    grid = result.normalised().mean("pair")
    assert grid.dims == ("source_layer", "layer", "position")
    assert grid.values.shape == (2, 2, 2)
    layer_by_position = grid.sel(source_layer=3)
    assert layer_by_position.sel(layer=3).values.shape == (2,)
    name = layer_by_position.heatmap(tmp_path, "grid.png", title="resid_post")
    assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    header, rows = layer_by_position.rows()
    assert header == ["layer \\ position", "first half", "second half"] and [r[0] for r in rows] == [2, 3]
    heads = activation_patching(tiny, pairs, "z", layers=[3], heads="each")
    assert heads.normalised().mean("pair").values.shape == (1, 6)


# ---- plumbing on a random-weights model -----------------------------------------------------


@pytest.fixture(scope="module")
def random_model():
    return tiny_random_model()


def random_pairs(model, n: int = 3) -> PatchPairs:
    generator = torch.Generator().manual_seed(3)
    mels = torch.randn(2 * n, 80, 20, generator=generator)
    return PatchPairs(mels[:n], mels[n:], torch.tensor([[50257, 50362, 383]] * n), torch.tensor([3, 2, 3][:n]),
                      torch.tensor([440] * n), torch.tensor([632] * n), short=True)


def test_per_pair_positions_and_heads_patch_only_there(random_model):
    pairs = random_pairs(random_model)
    hook = "encoder.blocks.1.attn.hook_z"
    rows = np.zeros((3, 10), dtype=bool)  # one row of positions per pair
    rows[0, 2:4] = True
    rows[2, 7] = True
    with random_model.caching(hook) as cache:
        patch_sites(random_model, pairs, [Site(hook, positions=rows, heads=(1,))], batch_size=2)
    calls = cache.calls(hook)  # per chunk of pairs (2, then 1): the clean, corrupted and patched runs
    assert len(calls) == 6
    for chunk, first in ((calls[:3], 0), (calls[3:], 2)):
        clean, corrupt, patched = chunk
        mask = torch.zeros(patched.shape[:3] + (1,), dtype=torch.bool)
        mask[:, :, 1] = torch.as_tensor(rows[first: first + len(patched)])[:, :, None]
        torch.testing.assert_close(patched, torch.where(mask, clean, corrupt))
        assert not torch.equal(patched, corrupt)


def test_bad_requests_are_one_line_errors(random_model):
    pairs = random_pairs(random_model)
    with pytest.raises(WhisperLensError, match="unknown component"):
        activation_patching(random_model, pairs, "resid")
    with pytest.raises(WhisperLensError, match="no head axis"):
        patch_sites(random_model, pairs, [Site("encoder.blocks.0.hook_resid_post", heads=(0,))])
    with pytest.raises(WhisperLensError, match="direction"):
        patch_sites(random_model, pairs, [Site("encoder.blocks.0.hook_resid_post")], direction="sideways")
    with pytest.raises(WhisperLensError, match="not a hook point"):
        patch_sites(random_model, pairs, [Site("encoder.blocks.9.hook_resid_post")])
    with pytest.raises(WhisperLensError, match="out of range"):
        activation_patching(random_model, pairs, layers=[5])
    with pytest.raises(WhisperLensError, match="cannot patch"):
        patch_sites(random_model, pairs, [Site("encoder.blocks.0.hook_resid_post", source_hook="encoder.blocks.0.mlp.hook_post")])
    with pytest.raises(WhisperLensError, match="no token where they differ"):
        candidate_tokens(whisper.tokenizer.get_tokenizer(False), "Cat", "Cat")


def test_labelled_array_means_skip_nan():
    array = LabelledArray(np.array([[1.0, np.nan], [3.0, np.nan]]), ("pair", "layer"))
    mean = array.mean("pair")
    assert mean.values[0] == 2.0 and np.isnan(mean.values[1]) and mean.coords["layer"] == [0, 1]


def test_cli_bad_input_is_exit_2(tmp_path, capsys):
    assert main(["patching", "pair", str(tmp_path / "missing.wav"), str(tmp_path / "other.wav"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- the study ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_corpus(tmp_path_factory):
    """Two minimal pairs and two English/Spanish pairs, synthesized offline."""
    root = tmp_path_factory.mktemp("pairs")
    build_corpus(CorpusConfig(out=root, clips=4, sets=("minimal_pairs", "en_es_pairs"), workers=1), progress=False)
    return root


def test_pairs_align_the_words_onsets(pair_corpus):
    corpus = CorpusSelection(path=str(pair_corpus), sets=("minimal_pairs",)).open()
    pairs, available = minimal_pairs(corpus, 10)
    assert available == len(pairs) == 2
    for pair in pairs:
        assert len(pair.audio_a) == len(pair.audio_b)
        # A's audio is silent before the shared onset and loud soon after it, as B's is
        onset = int(pair.onset_frame * 0.02 * 16000)
        assert np.abs(pair.audio_a[: max(0, onset - 400)]).max(initial=0) < 1e-3
        assert np.abs(pair.audio_a[onset: onset + 3200]).max() > 0.05
        assert pair.word_frames[pair.onset_frame + 2] and not pair.word_frames[-1]


def test_study_runs_end_to_end_and_reruns_nothing(tiny, pair_corpus, tmp_path, capsys):
    flags = ["patching", "run", "--corpus", str(pair_corpus), "--pairs", "1", "--position-pairs", "2",
             "--window-pairs", "0", "--crosslingual-pairs", "0", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(flags) == 0
    result = PatchingResult.load(tmp_path / "run")
    matrix = result.summary["matrix"]
    outcome = result.arrays["matrix.outcome"]
    # the diagonal is A's own run: its outcome is A's unpatched outcome, its normalised value 1
    for layer in range(4):
        np.testing.assert_array_equal(outcome[:, layer, layer], result.arrays["matrix.clean_outcome"])
    valid = (result.arrays["matrix.clean_logit_diff"] > 0) & (result.arrays["matrix.corrupt_logit_diff"] < 0)
    np.testing.assert_allclose(np.diagonal(result.arrays["matrix.normalised"], axis1=1, axis2=2)[valid], 1.0, atol=1e-4)
    assert matrix["distinguished"] == int(valid.sum())
    # the null baseline (B into itself) moves nothing
    null = result.arrays["positions.normalised"][2]
    np.testing.assert_allclose(null[np.isfinite(null)], 0.0, atol=1e-4)
    for name in ("matrix_binary.png", "matrix_normalised.png", "positions.png", "index.html"):
        assert (tmp_path / "run" / name).exists()
    assert main(flags) == 0
    assert "same fingerprint" in capsys.readouterr().out


def test_override_matrix_matches_the_straightforward_way(tiny, pair_corpus):
    """layer_matrix (cached prefixes, shared cross-attention keys, its own batched greedy decoder)
    gives what a forward hook on block t returning A's block-s output, a full encoder run of B,
    `whisper.decode` and a teacher-forced decoder pass give, cell by cell."""
    pairs, _ = minimal_pairs(CorpusSelection(path=str(pair_corpus), sets=("minimal_pairs",)).open(), 2)
    fast = layer_matrix(tiny, pairs, "en", batch_size=2)
    api = patch_pairs(tiny, pairs)
    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False, sample_len=MAX_TOKENS)
    with torch.inference_mode():
        states = []
        handles = [block.register_forward_hook(lambda module, inputs, output: states.append(output))
                   for block in tiny.encoder.blocks]
        tiny.encoder(api.clean_mel)
        for handle in handles:
            handle.remove()
        for source in range(4):
            for target in range(4):
                handle = tiny.encoder.blocks[target].register_forward_hook(
                    lambda module, inputs, output, value=states[source]: value)
                try:
                    features = tiny.encoder(api.corrupt_mel)
                finally:
                    handle.remove()
                texts = [r.text for r in whisper.decode(tiny, features, options)]
                outcome = [outcome_of(t, p.word_a, p.word_b) for t, p in zip(texts, pairs, strict=True)]
                np.testing.assert_array_equal(fast["outcome"][:, source, target], outcome)
                logits = tiny.decoder(api.prefix, features)[torch.arange(2), api.prefix_lengths - 1]
                difference = (logits.gather(1, api.clean_token[:, None]) - logits.gather(1, api.corrupt_token[:, None]))
                gap = fast["clean_logit_diff"] - fast["corrupt_logit_diff"]
                expected = (difference[:, 0].numpy() - fast["corrupt_logit_diff"]) / gap
                np.testing.assert_allclose(fast["normalised"][:, source, target], expected, rtol=1e-3, atol=1e-3)


def test_greedy_decoder_detects_the_language_as_whisper_does(pair_corpus):
    """On the multilingual model with the language left open (the cross-lingual binary metric)."""
    base = whisperlens.load_model("base")
    corpus = CorpusSelection(path=str(pair_corpus), sets=("en_es_pairs",)).open()
    mels = log_mel_batch([clip.audio for clip in corpus])
    options = whisper.DecodingOptions(without_timestamps=True, fp16=False, sample_len=MAX_TOKENS)
    with torch.inference_mode():
        features = base.encoder(mels)
        expected = [r.text for r in whisper.decode(base, features, options)]
        ours = greedy_decode(base, cross_kv(base, features), MAX_TOKENS, timestamps=False, language=None)
        assert [decoded.text for decoded in ours] == expected


def test_study_rejects_bad_settings_before_writing(pair_corpus, tmp_path, capsys):
    out = tmp_path / "bad"
    for flags in (["--window", "0"], ["--position-pairs", "1"], ["--crosslingual-model", "tiny.en"]):
        assert main(["patching", "run", "--corpus", str(pair_corpus), "--out", str(out), "--no-progress", *flags]) == 2
        assert capsys.readouterr().err.count("\n") == 1
        assert not (out / "result.json").exists()


def test_pair_command_draws_the_layer_by_position_heatmap(speech_dir, tmp_path, capsys):
    out = tmp_path / "pair"
    assert main(["patching", "pair", str(speech_dir / "fox.wav"), str(speech_dir / "weather.wav"), "--window", "50",
                 "--out", str(out)]) == 0
    record = json.loads((out / "pair.json").read_text())
    assert record["header"][0] == "layer \\ position" and record["header"][-1] == "all"
    assert [row[0] for row in record["rows"]] == [0, 1, 2, 3]
    assert record["rows"][3][-1] == pytest.approx(1.0, abs=1e-3)  # the whole last layer from A: A's run
    assert (out / "pair.png").read_bytes()[:4] == b"\x89PNG"
    assert "heatmap:" in capsys.readouterr().out


def test_a_patch_from_data_cannot_name_a_source_cache():
    from whisperlens.interventions import Patch

    with pytest.raises(WhisperLensError, match="source is another run's ActivationCache"):
        Patch.from_dict({"kind": "patch", "hook": LAST, "source": {LAST: [0.0]}})
