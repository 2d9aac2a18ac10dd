"""The study's three measurements, each from the model to the JSON-ready numbers it reports
(study.py renders them): bigrams without audio, embedding neighbours, decoder neuron classes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from . import bigrams as bigram_lib
from . import neighbours as neighbour_lib
from . import neurons as neuron_lib
from .prompts import CONDITIONS, next_token_logits, prompt_tokens, start_sequence
from .resources import fortunes, pronunciations

SEED_RUG = {"word": "rug", "partners": ("lug", "mug", "tug")}  # seed 003: "'rug' is close to lug, mug and tug"
# The seeds' three kinds of decoder.blocks.0.mlp neuron (seed 003: neurons 10, 12, 14 of multilingual tiny).
SEED_KINDS = {"food": "noun.food", "numbers and ordinals": "number", "verbs of motion": "verb.motion"}
FOLLOWERS_SHOWN = 5
LABELLED_SHOWN = 8  # neurons with a dominant class of meaning shown with their examples


def token_text(tokenizer, token: int) -> str:
    return tokenizer.decode_with_timestamps([token]) if token >= tokenizer.eot else tokenizer.decode([token])


def next_tokens(model, tokenizer, prompts: list[str], conditions: list[str], top: int) -> list[dict]:
    """Per prompt, the `top` next tokens and their logits under each no-audio condition."""
    token_lists = [prompt_tokens(tokenizer, prompt) for prompt in prompts]
    found = [{"prompt": prompt, "tokens": [token_text(tokenizer, t) for t in tokens], "conditions": {}}
             for prompt, tokens in zip(prompts, token_lists)]
    for condition in conditions:
        logits = next_token_logits(model, token_lists, condition)
        for entry, row in zip(found, logits):
            best = torch.topk(row, top)
            entry["conditions"][condition] = [[token_text(tokenizer, t), round(v, 3)]
                                              for t, v in zip(best.indices.tolist(), best.values.tolist())]
    return found


def measure_bigrams(model, tokenizer, conditions: list[str], size: int, prompts: list[str]) -> dict:
    """The decoder's next-word distributions against the fortunes' bigrams, with the baselines."""
    reference = bigram_lib.reference_bigrams(fortunes(), size, lambda word: len(tokenizer.encode(" " + word)) == 1)
    columns, owners = bigram_lib.word_columns(tokenizer, reference.words)
    n_words = len(reference.words)
    word_prompts = [start_sequence(tokenizer) + tokenizer.encode(" " + word) for word in reference.words]
    rows, predicted = [], {}
    for condition in conditions:
        log_q, mass = bigram_lib.word_log_probs(next_token_logits(model, word_prompts, condition, columns=columns,
                                                                  log_probs=True), owners, n_words)
        predicted[condition] = log_q
        rows.append({"label": f"decoder, prompt word, {condition}", "condition": condition, "mass": float(mass.mean()),
                     **bigram_lib.score(log_q, reference.bigrams)})
        log_u, mass = bigram_lib.word_log_probs(next_token_logits(model, [start_sequence(tokenizer)], condition,
                                                                  columns=columns, log_probs=True), owners, n_words)
        rows.append({"label": f"decoder, no prompt (unigram), {condition}", "condition": condition,
                     "mass": float(mass.mean()), **bigram_lib.score(log_u, reference.bigrams)})
    unigram = np.log(reference.unigrams / reference.unigrams.sum())[None]
    rows.append({"label": "text unigram (in-sample)", "condition": None, "mass": 1.0,
                 **bigram_lib.score(unigram, reference.bigrams)})
    with np.errstate(divide="ignore"):
        text_bigram = np.log(reference.bigrams / np.maximum(reference.bigrams.sum(1, keepdims=True), 1))
    rows.append({"label": "text bigram (in-sample ceiling)", "condition": None, "mass": 1.0,
                 **bigram_lib.score(text_bigram, reference.bigrams)})
    index = {word: i for i, word in enumerate(reference.words)}
    followers = [{"word": word, "text": bigram_lib.top_followers(reference.bigrams[index[word]], reference.words,
                                                                  FOLLOWERS_SHOWN),
                  **{condition: bigram_lib.top_followers(predicted[condition][index[word]], reference.words,
                                                         FOLLOWERS_SHOWN) for condition in conditions}}
                 for word in (p.lower() for p in prompts) if word in index]
    return {"source": "Debian packages fortunes + fortunes-min (/usr/share/games/fortunes)", "fortunes": reference.texts,
            "text_words": reference.text_words, "vocabulary": n_words, "bigrams": int(reference.bigrams.sum()),
            "min_followers": bigram_lib.MIN_FOLLOWERS, "scores": rows, "followers": followers}


def measure_neighbours(model, tokenizer, words: list[str], count: int, queries: int, seed: int) -> dict:
    """Every method's neighbours of `queries` word tokens scored against the frequency-matched
    baseline, and the given words' neighbours under each method."""
    embedding = word_embedding(model, tokenizer)
    chosen = neighbour_lib.queries(embedding, queries, seed)
    cache = {}
    baseline = baseline_scores(embedding, chosen, count, seed, cache)
    limits = neighbour_lib.thresholds(baseline)
    methods = {}
    for method in neighbour_lib.METHODS:
        scores = [s for q in chosen for s in neighbour_lib.pair_scores(
            embedding, q, [t for t, _ in embedding.neighbours(method, q, count)], cache)]
        methods[method] = neighbour_lib.summarise(scores, limits)
    best = max(neighbour_lib.METHODS, key=lambda method: methods[method]["sensible"])
    shown = [word_neighbours(embedding, tokenizer, word, count, limits, cache) for word in words]
    return {"queries": int(len(chosen)), "word_tokens": int(len(embedding.words)), "thresholds": limits,
            "baseline": neighbour_lib.summarise(baseline, limits), "methods": methods, "best": best,
            "words": shown, "seed_rug": seed_partner_ranks(embedding, tokenizer)}


def word_embedding(model, tokenizer) -> neighbour_lib.Embedding:
    known = pronunciations()
    return neighbour_lib.Embedding.of(model, tokenizer, lambda word: word in known)


def baseline_scores(embedding, chosen, count: int, seed: int, cache: dict) -> list[dict]:
    """Scores of `count` random word tokens of each query's frequency."""
    rng = np.random.default_rng(seed)
    return [s for q in chosen for s in neighbour_lib.pair_scores(
        embedding, q, neighbour_lib.frequency_matched(embedding, q, count, rng), cache)]


def word_neighbours(embedding, tokenizer, word: str, count: int, limits: dict, cache: dict) -> dict:
    token = tokenizer.encode(" " + word)[0]
    entry = {"word": word, "methods": {}}
    for method in neighbour_lib.METHODS:
        found = embedding.neighbours(method, token, count)
        if found is None:
            entry["methods"][method] = None
            continue
        scores = neighbour_lib.pair_scores(embedding, token, [t for t, _ in found], cache)
        entry["methods"][method] = [{"token": embedding.texts[t], "cosine": round(cosine, 4), "sound": s["sound"],
                                     "meaning": s["meaning"], "category": neighbour_lib.category(s, limits)}
                                    for (t, cosine), s in zip(found, scores)]
    return entry


def seed_partner_ranks(embedding, tokenizer) -> dict:
    """Where lug, mug and tug rank among rug's neighbours (1 = nearest), per method."""
    token = tokenizer.encode(" " + SEED_RUG["word"])[0]
    ranks = {}
    for method in neighbour_lib.METHODS:
        order = embedding.ranking(method, token)
        forms = [embedding.form(t) for t in order] if order is not None else []
        ranks[method] = {partner: forms.index(partner) + 1 if partner in forms else None for partner in SEED_RUG["partners"]}
    return {"word": SEED_RUG["word"], "ranks": ranks}


def measure_neurons(model, corpus, hook: str, top_words: int, n_random: int, batch_size: int, seed: int,
                    progress) -> tuple[dict, dict[str, np.ndarray]]:
    """Each live feature's commonest class among its top words, for neurons, random directions and
    random word sets, and the neurons nearest the seeds' three kinds."""
    maxima = neuron_lib.harvest(model, corpus, hook, n_random, seed, batch_size, progress)
    labels = neuron_lib.label_features(maxima, top_words)
    width = maxima.values.shape[1] - n_random  # the hook's own coordinates come first
    size = labels.top.shape[1]
    kinds = {"neurons": np.arange(width), "random directions": np.arange(width, width + n_random)}
    kinds = {kind: features[labels.live[features]] for kind, features in kinds.items()}
    threshold = neuron_lib.DOMINANT_SHARE
    rows, classes = [], {}
    for kind, features in kinds.items():
        dominant = [f for f in features if labels.share[f] >= threshold]
        rows.append({"label": kind, "features": int(len(features)), "dominant": len(dominant) / max(len(features), 1),
                     "semantic": sum(neuron_lib.is_semantic(labels.label[f]) for f in dominant) / max(len(features), 1),
                     "mean_share": float(labels.share[features].mean())})
        classes[kind] = dict(Counter(labels.label[f] for f in dominant).most_common())
    word_sets = neuron_lib.random_word_sets(maxima.words, width, size, seed)
    rows.append({"label": "random word sets", "features": int(len(word_sets)),
                 "dominant": float(np.mean([share >= threshold for _, share in word_sets])),
                 "semantic": float(np.mean([share >= threshold and neuron_lib.is_semantic(label)
                                            for label, share in word_sets])),
                 "mean_share": float(np.mean([share for _, share in word_sets]))})
    texts = {}

    def examples(feature: int) -> dict:
        found = []
        for word in labels.top[feature]:
            clip = int(maxima.clips[word, feature])
            if clip not in texts:
                texts[clip] = corpus[clip].text
            found.append({"word": maxima.words[word], "activation": round(float(maxima.values[word, feature]), 3),
                          "context": neuron_lib.context(texts[clip], int(maxima.positions[word, feature]))})
        return {"feature": int(feature), "class": labels.label[feature], "share": round(float(labels.share[feature]), 3),
                "examples": found}

    seed_kinds = []
    for kind, name in SEED_KINDS.items():
        shares = labels.kind_share(name)
        neurons, directions = kinds["neurons"], kinds["random directions"]
        best = int(neurons[np.argmax(shares[neurons])]) if len(neurons) else None
        seed_kinds.append({"kind": kind, "class": name, "words": int(sum(neuron_lib.word_class(w) == name
                                                                          for w in maxima.words)),
                           "neurons_half": int((shares[neurons] >= threshold).sum()),
                           "directions_half": int((shares[directions] >= threshold).sum()),
                           "best_share": float(shares[best]) if best is not None else 0.0,
                           "best_direction_share": float(shares[directions].max()) if len(directions) else 0.0,
                           "best": examples(best) if best is not None and shares[best] > 0 else None})
    labelled = sorted((f for f in kinds["neurons"] if labels.share[f] >= threshold and neuron_lib.is_semantic(labels.label[f])),
                      key=lambda f: -labels.share[f])
    summary = {"hook": hook, "clips": len(corpus), "words": len(maxima.words), "top_words": size,
               "dominant_share": threshold, "rows": rows, "classes": classes, "seed_kinds": seed_kinds,
               "labelled": [examples(f) for f in labelled[:LABELLED_SHOWN]]}
    arrays = {"neurons.top_words": labels.top.astype(np.int32), "neurons.shares": labels.share.astype(np.float32),
              "neurons.live": labels.live}
    return summary, arrays


def condition_descriptions(conditions: list[str]) -> str:
    return "; ".join(f"{name}: {CONDITIONS[name]}" for name in conditions)
