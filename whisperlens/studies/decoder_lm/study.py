"""The decoder study: the config, run(config, context), the result and its views.

    whisperlens decoder run        # tiny.en: 2000 words for bigrams, 300 neighbour queries, 100 clips per voice
    whisperlens decoder run --model base
    whisperlens decoder run --vocabulary 5000 --queries 0 --per-voice 2000   # the large setting
    whisperlens decoder bigrams traffic Good "New York"
    whisperlens decoder neighbours rug UK cat
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ...corpus.selection import CorpusSelection
from ...errors import WhisperLensError
from ...study import CorpusStudyConfig, Figure, Result, Study, Table, Text
from . import parts
from .commands import add_commands
from .figures import (
    bigram_scores_figure,
    methods_figure,
    neighbour_table,
    neighbours_figure,
    neurons_figure,
    next_token_figure,
    next_token_table,
)
from .neighbours import CATEGORIES, METHODS
from .prompts import CONDITIONS, check_conditions, english_tokenizer, word_token

DECODER_HOOK = re.compile(r"decoder\.blocks\.\d+\.(mlp\.hook_(pre|post)|hook_resid_(pre|mid|post)|hook_(attn|mlp)_out)")


@dataclass
class DecoderLMConfig(CorpusStudyConfig):
    """The decoder as a language model: bigrams from no audio against the fortunes text, token
    embedding neighbours by sound and meaning, and semantic classes of decoder MLP neurons."""

    corpus: CorpusSelection = field(default_factory=lambda: CorpusSelection(per_voice=100))
    prompts: tuple[str, ...] = ("very", "traffic", "Good", "New")  # prompts whose next tokens are plotted
    conditions: tuple[str, ...] = tuple(CONDITIONS)  # kinds of no audio: silence, zeros, no_cross
    vocabulary: int = 2000  # most frequent fortune words (one token each) the bigrams are measured over
    top: int = 20  # next tokens plotted per prompt; neighbours per word
    words: tuple[str, ...] = ("rug", "UK", "cat")  # single-token words whose neighbours are plotted
    queries: int = 300  # word tokens whose neighbours are scored, a seeded sample (0: all, ~15,000)
    hook: str = "decoder.blocks.0.mlp.hook_post"  # the decoder activation whose features are labelled
    top_words: int = 10  # distinct top words per feature
    random_directions: int = 1536  # random-direction features, the baseline for the neurons
    batch_size: int = 64  # clips per batch in the neuron harvest

    def validate(self) -> None:
        super().validate()
        check_conditions(self.conditions)
        if not self.prompts or not all(prompt.strip() for prompt in self.prompts):
            raise WhisperLensError("--prompts: give one or more non-empty prompts")
        for name, low in (("vocabulary", 100), ("top", 1), ("top_words", 2), ("random_directions", 1), ("batch_size", 1)):
            if getattr(self, name) < low:
                raise WhisperLensError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(self, name)}")
        if self.queries < 0:
            raise WhisperLensError(f"--queries must be 0 (all) or more, got {self.queries}")
        if not DECODER_HOOK.fullmatch(self.hook):
            raise WhisperLensError(f"--hook must name one decoder activation per token, such as "
                                   f"decoder.blocks.0.mlp.hook_post, not {self.hook!r}")


def run(config: DecoderLMConfig, context) -> DecoderLMResult:
    model = context.model(config.model)
    tokenizer = english_tokenizer(model)
    for word in config.words:
        word_token(tokenizer, word)  # a bad word fails before any work
    if config.hook not in model.hook_dict:
        raise WhisperLensError(f"--hook {config.hook}: {config.model.model} has no such hook point")
    corpus = context.corpus(config.corpus)
    seconds = {}

    start = time.perf_counter()
    prompts = parts.next_tokens(model, tokenizer, list(config.prompts), list(config.conditions), config.top)
    bigrams = parts.measure_bigrams(model, tokenizer, list(config.conditions), config.vocabulary, list(config.prompts))
    seconds["bigrams"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    neighbours = parts.measure_neighbours(model, tokenizer, list(config.words), config.top, config.queries, config.seed)
    seconds["neighbours"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    neurons, arrays = parts.measure_neurons(model, corpus, config.hook, config.top_words, config.random_directions,
                                            config.batch_size, config.seed, context.show_progress and "neurons")
    seconds["neurons"] = round(time.perf_counter() - start, 1)

    folder = context.folder
    folder.mkdir(parents=True, exist_ok=True)
    for index, prompt in enumerate(prompts):
        next_token_figure(prompt, folder, f"next_tokens_{index}.png", config.model.model)
    bigram_scores_figure(bigrams["scores"], folder, config.model.model)
    for index, entry in enumerate(neighbours["words"]):
        neighbours_figure(entry, ["raw", neighbours["best"]], folder, f"neighbours_{index}.png", config.model.model)
    methods_figure(method_rows(neighbours), folder, config.model.model)
    neurons_figure(neurons["rows"], neurons["classes"], folder, config.model.model, config.hook)
    summary = {"model": config.model.model, "start_sequence": [parts.token_text(tokenizer, t) for t in
                                                               tokenizer.sot_sequence_including_notimestamps],
               "seconds": seconds, "prompts": prompts, "bigrams": bigrams, "neighbours": neighbours, "neurons": neurons}
    return DecoderLMResult(config, summary, arrays, folder)


def method_rows(neighbours: dict) -> list[dict]:
    rows = [{"label": method, **neighbours["methods"][method]} for method in METHODS]  # result.json sorts its keys
    return rows + [{"label": "random words, matched frequency", **neighbours["baseline"]}]


class DecoderLMResult(Result):
    study = "decoder"
    config_type = DecoderLMConfig

    def views(self):
        s = self.summary
        model = s["model"]
        blocks = [Text(f"{model}, prompted with its own start sequence {''.join(s['start_sequence'])} and a word, with "
                       f"no audio ({parts.condition_descriptions(self.config.conditions)}). Time (s): "
                       + ", ".join(f"{k} {v}" for k, v in s["seconds"].items()) + ".")]
        blocks += self.bigram_views(model)
        blocks += self.neighbour_views(model)
        blocks += self.neuron_views(model)
        return blocks

    def bigram_views(self, model: str) -> list:
        s, b = self.summary, self.summary["bigrams"]
        blocks = [Figure(f"next_tokens_{i}.png", f"{model}: the top {len(next(iter(p['conditions'].values())))} next "
                         f"tokens after {p['prompt']!r} and their logits, per no-audio condition",
                         numbers=next_token_table(p, self.config.conditions)) for i, p in enumerate(s["prompts"])]
        scores = Table(["distribution", "cross-entropy (bits)", "top-1", "top-5", "top-10", "Spearman", "mass on the words"],
                       [[r["label"], round(r["cross_entropy_bits"], 3), round(r["top1"], 4), round(r["top5"], 4),
                         round(r["top10"], 4), round(r["spearman"], 4), round(r["mass"], 4)] for r in b["scores"]])
        blocks.append(Figure("bigram_scores.png", f"{model}: how well the decoder's next-word distribution without audio "
                             "predicts the next word of the fortunes text, against its own no-prompt distribution and the "
                             "text's unigram and bigram frequencies", numbers=scores,
                             caption=f"Reference: {b['source']}: {b['fortunes']} fortunes, {b['text_words']} words. Measured "
                                     f"over its {b['vocabulary']} most frequent single-token words ({b['bigrams']} bigrams "
                                     "between them). Hit rates: shares of the text's bigrams whose second word is among the "
                                     f"k likeliest. Spearman: mean over prompt words followed at least {b['min_followers']} "
                                     "times of the rank correlation between predicted probability and bigram count. Mass: "
                                     "the share of the decoder's next-token probability on these words."))
        if b["followers"]:
            conditions = [c for c in self.config.conditions]
            blocks.append(Table(["word", "text's commonest next words", *(f"decoder ({c})" for c in conditions)],
                                [[f["word"], " ".join(f["text"]), *(" ".join(f[c]) for c in conditions)]
                                 for f in b["followers"]],
                                caption="The prompt words' likeliest next words among the measured words."))
        return blocks

    def neighbour_views(self, model: str) -> list:
        n = self.summary["neighbours"]
        blocks = []
        for index, entry in enumerate(n["words"]):
            methods = [m for m in ("raw", n["best"]) if entry["methods"].get(m)]
            blocks.append(Figure(f"neighbours_{index}.png", f"{model}: the nearest tokens to {entry['word']!r}, raw cosine "
                                 f"and {n['best']}, coloured by how they are alike", numbers=neighbour_table(entry, methods)))
        limits = n["thresholds"]
        rows = [[r["label"], r["pairs"], round(r["sound"], 4), round(r["meaning"], 4),
                 *(round(r["shares"][c], 4) for c in CATEGORIES), round(r["sensible"], 4)] for r in method_rows(n)]
        blocks.append(Figure("neighbour_methods.png", f"{model}: mean sound and meaning similarity of the top neighbours of "
                             f"{n['queries']} word tokens per method, and the kinds of neighbour, against random words",
                             numbers=Table(["method", "pairs", "sound", "meaning", *CATEGORIES, "alike"], rows),
                             caption=f"Queries: a seeded sample of the {n['word_tokens']} word tokens (lowercase, with a "
                                     f"WordNet sense). Alike by sound: phone similarity >= {limits['sound']:.3f}; by meaning: "
                                     f"Wu-Palmer >= {limits['meaning']:.3f} (each the 95th percentile of random words of "
                                     f"the query's frequency). 'alike': any kind but neither and not a word. Best method "
                                     f"by that share: {n['best']}."))
        rug = n["seed_rug"]
        blocks.append(Table(["method", *(f"rank of {p}" for p in parts.SEED_RUG["partners"])],
                            [[m, *(rug["ranks"][m][p] if rug["ranks"][m][p] is not None else "-"
                                   for p in parts.SEED_RUG["partners"])] for m in METHODS],
                            caption=f"Seed claim: '{rug['word']}' is close to lug, mug and tug. Their rank among its "
                                    "neighbours (1 = nearest; other forms of the word left out)."))
        return blocks

    def neuron_views(self, model: str) -> list:
        r = self.summary["neurons"]
        rows = [[row["label"], row["features"], round(row["dominant"], 4), round(row["semantic"], 4),
                 round(row["mean_share"], 4)] for row in r["rows"]]
        class_rows = [[name, *(r["classes"][kind].get(name, 0) for kind in r["classes"])]
                      for name in sorted({c for counts in r["classes"].values() for c in counts},
                                         key=lambda c: -sum(counts.get(c, 0) for counts in r["classes"].values()))]
        blocks = [Figure("neurons.png", f"{model}: share of {r['hook']} features whose top {r['top_words']} distinct words "
                         "are mostly of one class, neurons against random directions and random word sets",
                         numbers=Table(["features", "live", "share with a dominant class", "... a class of meaning",
                                        "mean commonest-class share"], rows),
                         caption=f"{r['clips']} corpus clips, {r['words']} distinct words, teacher-forced. Classes: WordNet "
                                 "lexicographer files of each word's commonest sense, and 'number'; 'a class of meaning' "
                                 "leaves out adj.all and adv.all, which hold every adjective and adverb. Dominant: at least "
                                 f"{r['dominant_share']:.0%} of the top words. Live: positive somewhere in the corpus."),
                  Table(["class", *(f"{kind} with it dominant" for kind in r["classes"])], class_rows)]
        blocks.append(Table(["seed kind", "class", "corpus words in it", "neurons >= half", "random directions >= half",
                             "best neuron's share", "best random direction's share"],
                            [[k["kind"], k["class"], k["words"], k["neurons_half"], k["directions_half"],
                              round(k["best_share"], 3), round(k["best_direction_share"], 3)] for k in r["seed_kinds"]],
                            caption="The seeds' three kinds of decoder.blocks.0.mlp neuron: how many features have at "
                                    "least half their top words in the class."))
        for kind in r["seed_kinds"]:
            if kind["best"] is not None:
                blocks.append(example_table(kind["best"], f"Seed kind '{kind['kind']}': neuron {kind['best']['feature']}, "
                                                          f"{kind['best_share']:.0%} of its top words {kind['class']}"))
        for example in r["labelled"]:
            blocks.append(example_table(example, f"Neuron {example['feature']}: {example['class']} "
                                                 f"({example['share']:.0%} of its top words)"))
        return blocks


def example_table(example: dict, caption: str) -> Table:
    return Table(["word", "activation", "transcript"], [[e["word"], e["activation"], e["context"]]
                                                        for e in example["examples"]], caption=caption)


STUDY = Study("decoder", "Decoder as a language model: bigrams, embedding neighbours, semantic neurons",
              DecoderLMConfig, run, DecoderLMResult,
              description="Whisper's decoder with no audio: its next-token distributions against a real English text, "
                          "its token embedding's neighbours scored by sound and meaning, and semantic classes of its "
                          "MLP neurons, each against a baseline.", add_commands=add_commands)
