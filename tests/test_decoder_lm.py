"""The decoder study (issue 9) on the real tiny.en and base weights: the no-audio prompt and
its conditions, bigrams against counted text, sound and meaning scores, embedding neighbours,
the decoder neuron harvest, bad words, and the study end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import whisperlens
from whisperlens.cli import main
from whisperlens.stream import clip_tokens
from whisperlens.studies.decoder_lm import STUDY, DecoderLMConfig
from whisperlens.studies.decoder_lm.bigrams import reference_bigrams, score, word_columns, word_log_probs
from whisperlens.studies.decoder_lm.neighbours import Embedding
from whisperlens.studies.decoder_lm.neurons import context, harvest, token_words
from whisperlens.studies.decoder_lm.parts import next_tokens
from whisperlens.studies.decoder_lm.prompts import (
    english_tokenizer,
    next_token_logits,
    no_audio_features,
    prompt_tokens,
)
from whisperlens.studies.decoder_lm.resources import pronunciations
from whisperlens.studies.decoder_lm.similarity import meaning_similarity, semantic_class, sound_similarity

# decoding runs many small steps: see conftest.one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return english_tokenizer(tiny)


@pytest.fixture(scope="module")
def embedding(tiny, tokenizer):
    known = pronunciations()
    return Embedding.of(tiny, tokenizer, lambda word: word in known)


def test_the_prompt_is_the_models_start_sequence_with_notimestamps_before_the_word(tiny, tokenizer):
    traffic = tokenizer.encode(" traffic")
    assert prompt_tokens(tokenizer, "traffic") == [tokenizer.sot, tokenizer.no_timestamps, *traffic]  # no language, no task
    base = whisperlens.load_model("base")
    multilingual = english_tokenizer(base)
    assert prompt_tokens(multilingual, "traffic") == [multilingual.sot, multilingual.to_language_token("en"),
                                                      multilingual.transcribe, multilingual.no_timestamps,
                                                      *multilingual.encode(" traffic")]
    assert len(prompt_tokens(tokenizer, "New York")) == 4  # several words: several tokens
    top = next_tokens(base, multilingual, ["traffic"], ["silence"], 10)[0]["conditions"]["silence"]
    assert " jam" in [token for token, _ in top]  # the seeds' traffic -> jam, on the model they used (multilingual)


def test_a_strong_collocation_ranks_its_partner_in_the_top_ten(tiny, tokenizer):
    found = next_tokens(tiny, tokenizer, ["New"], ["silence", "zeros", "no_cross"], 10)[0]["conditions"]
    for condition in ("silence", "zeros"):
        assert " York" in [token for token, _ in found[condition]]
    # Cutting cross-attention leaves the decoder out of its depth: it says there is no speech.
    assert found["no_cross"][0][0] == "<|nospeech|>"


def test_next_token_logits_equal_the_full_decoder_pass(tiny, tokenizer):
    """The pass stops at the final LayerNorm and unembeds the last position only; zeros are given
    as one audio position instead of 1500: neither changes a logit."""
    prompts = [prompt_tokens(tokenizer, word) for word in ("very", "Good", "cat")]
    tokens = torch.tensor(prompts)
    with torch.inference_mode():
        for condition in ("silence", "zeros"):
            features = no_audio_features(tiny, condition)
            full = tiny.decoder(tokens, features.expand(len(prompts), 1500, -1))[:, -1]
            assert torch.allclose(next_token_logits(tiny, prompts, condition), full, atol=1e-3)
        no_cross = next_token_logits(tiny, prompts, "no_cross")
    assert not torch.allclose(no_cross, full, atol=1.0)  # cutting cross-attention changes the distribution


def test_bigram_counts_and_scores_on_a_counted_text(tokenizer):
    texts = ["The cat sat. The cat ran, the dog sat!", "the dog ran"]
    reference = reference_bigrams(texts, 10, lambda word: True)
    index = {word: i for i, word in enumerate(reference.words)}
    assert reference.words[0] == "the" and reference.text_words == 12
    assert reference.bigrams[index["the"], index["cat"]] == 2 and reference.bigrams[index["the"], index["dog"]] == 2
    assert reference.bigrams[index["sat"], index["the"]] == 0  # a full stop ends the run of words
    assert reference.bigrams[index["ran"], index["the"]] == 0  # so does a comma
    # The text's own conditional frequencies predict it better than its unigram frequencies.
    with np.errstate(divide="ignore"):
        bigram = np.log(reference.bigrams / np.maximum(reference.bigrams.sum(1, keepdims=True), 1))
    unigram = np.log(reference.unigrams / reference.unigrams.sum())[None]
    good, plain = score(bigram, reference.bigrams), score(unigram, reference.bigrams)
    assert good["top1"] > plain["top1"] and good["cross_entropy_bits"] < plain["cross_entropy_bits"]
    assert good["top5"] == 1.0
    # A word's probability is the sum of its lowercase and capitalised tokens'.
    columns, owners = word_columns(tokenizer, ["the", "cat"])
    assert [tokenizer.decode([t]) for t in columns.tolist()] == [" the", " The", " cat", " Cat"]
    log_probs = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.1]]))
    words, mass = word_log_probs(log_probs, owners, 2)
    assert np.allclose(np.exp(words), [[0.3 / 0.7, 0.4 / 0.7]]) and np.isclose(mass[0], 0.7)


def test_sound_and_meaning_scores_tell_cat_hat_from_cat_dog():
    assert sound_similarity("cat", "hat") > sound_similarity("cat", "dog")
    assert meaning_similarity("cat", "dog") > meaning_similarity("cat", "hat")
    assert sound_similarity("rug", "mug") == pytest.approx(2 / 3)  # R AH G / M AH G: one phone of three
    assert sound_similarity("rug", "xqzv") is None and meaning_similarity("the", "cat") is None
    assert semantic_class("cheese") == "noun.food" and semantic_class("walked") == "verb.motion"
    assert semantic_class("fifth") == semantic_class("15") == semantic_class("eight") == "number"


def test_neighbours_are_other_words_and_centring_finds_rugs_rhymes(embedding, tokenizer):
    rug = tokenizer.encode(" rug")[0]
    raw = [embedding.form(t) for t, _ in embedding.neighbours("raw", rug, 20)]
    centred = [embedding.texts[t] for t, _ in embedding.neighbours("centred-pc1", rug, 20)]
    assert sum(form not in pronunciations() for form in raw) >= 5  # raw cosine: '______', '###', kana
    assert {" lug", " mug"} <= set(centred) and all(text.strip().isalpha() for text in centred)
    cat = tokenizer.encode(" cat")[0]
    forms = [embedding.form(t) for t, _ in embedding.neighbours("words", cat, 20)]
    assert "cat" not in forms and len(set(forms)) == len(forms)  # neither " Cat" nor a form twice
    cosines = [c for _, c in embedding.neighbours("words", cat, 20)]
    assert cosines == sorted(cosines, reverse=True)


def test_the_harvest_keeps_each_words_largest_activation(tiny, corpus):
    hook = "decoder.blocks.0.mlp.hook_post"
    clips = corpus.select(set=("english",))[:6]
    maxima = harvest(tiny, clips, hook, n_random=4, seed=0, batch_size=1, progress=False)  # one clip: its own short mel
    assert maxima.values.shape[1] == 4 * tiny.dims.n_text_state + 4
    tokenizer = whisperlens.models.loading.tokenizer_for(tiny)
    index = {word: i for i, word in enumerate(maxima.words)}
    for number, clip in enumerate(clips):
        tokens = clip_tokens(tokenizer, clip.text, tiny.dims.n_text_ctx)
        words = clip.text.split()
        owners = token_words(tokenizer, tokens, len(words))
        assert sorted(set(owners.tolist()) - {-1}) == list(range(len(words)))
        with torch.inference_mode():
            _, cache = tiny.run_with_cache(whisperlens.audio.log_mel(clip.audio, short=True), torch.tensor(tokens),
                                           names_filter=hook, short_audio=True)
        activations = cache[hook][0]
        for position, word in enumerate(words):
            own = activations[torch.from_numpy(owners == position)].max(0).values
            kept = maxima.values[index[word.lower()], : own.shape[0]]
            assert torch.all(kept >= own - 1e-4)
            here = (maxima.clips[index[word.lower()], : own.shape[0]] == number) \
                & (maxima.positions[index[word.lower()], : own.shape[0]] == position)
            assert torch.allclose(kept[here], own[here], atol=1e-4)
    assert context("the quick brown fox jumps over the lazy dog", 4) == "quick brown fox [jumps] over the lazy"


@pytest.mark.parametrize("argv", [
    ["neighbours", "New York"],  # several tokens where one is needed
    ["neighbours", "qwzxv"],  # no such token
    ["neighbours", ""],
    ["bigrams", "  "],
    ["run", "--words", "New York"],
    ["run", "--conditions", "darkness"],
])
def test_a_bad_word_is_a_one_line_error(argv, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["decoder", *argv, "--out", str(out), *(["--no-progress"] if argv[0] == "run" else [])]) == 2
    error = capsys.readouterr().err
    assert error.startswith("whisperlens: error: ") and error.count("\n") == 1
    assert not out.exists()


def test_the_study_end_to_end_on_a_small_setting(corpus, tmp_path, capsys):
    out = tmp_path / "decoder"
    argv = ["decoder", "run", "--corpus", str(corpus.root), "--vocabulary", "150", "--queries", "12",
            "--random-directions", "16", "--prompts", "New", "--words", "rug", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    record = json.loads((out / "result.json").read_text())
    summary = record["summary"]
    labels = [row["label"] for row in summary["bigrams"]["scores"]]
    assert "decoder, prompt word, silence" in labels and "text unigram (in-sample)" in labels
    assert summary["neighbours"]["queries"] == 12 and summary["neighbours"]["best"] in summary["neighbours"]["methods"]
    assert [row["label"] for row in summary["neurons"]["rows"]] == ["neurons", "random directions", "random word sets"]
    for name in ("next_tokens_0.png", "bigram_scores.png", "neighbours_0.png", "neighbour_methods.png", "neurons.png",
                 "index.html"):
        assert (out / name).stat().st_size > 1000
    before = (out / "result.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # the same fingerprint: the saved result, untouched
    assert "saved result" in capsys.readouterr().out and (out / "result.json").stat().st_mtime_ns == before
    assert DecoderLMConfig().hook == "decoder.blocks.0.mlp.hook_post" and STUDY.name == "decoder"
