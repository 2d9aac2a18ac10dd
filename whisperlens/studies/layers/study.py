"""The layers study: the config, run(config, context), the result and its views.

    whisperlens layers run                                 # tiny.en, 8 English clips per voice, 3 non-speech per kind
    whisperlens layers run --per-voice 34 --nonspeech-per-kind 10 --asterisk 100   # the full setting
    whisperlens layers run --model base
    whisperlens layers run --tuned-lens-clips 128          # and the tuned lens, trained on 128 held-out clips
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace

import numpy as np

from ...corpus.selection import CorpusSelection, english_speech, short_asterisk_prompts
from ...distributed import ExecutorSpec
from ...errors import WhisperLensError
from ...study import CorpusStudyConfig, Figure, Result, Study, Table, Text
from .figures import SEED_MEDIUM, heads_figure, lens_figure, removal_figure, seed_points
from .heads import trace_loops
from .lens import summarise_points, token_examples
from .metrics import failure_kind, nonspeech_rates, score_nonspeech, score_speech, speech_rates
from .removal import configurations, decode_configurations
from .sharded import decode_sharded, lens_sharded, nonspeech_clips
from .tuned import BATCH_TOKENS, LEARNING_RATE, held_out_clips, train_translators, training_set

LENS_ARRAYS = ("kl", "agrees", "rank", "probability", "top_tokens", "targets", "clip_of_token", "tuned_kl",
               "tuned_agrees")  # LensResult's arrays, saved as lens.NAME (the tuned ones when trained)
SETS = ("english", "asterisk", "nonspeech")  # the order they run and show in (result.json sorts its keys)
# Asterisk prompts up to this long keep the token limit a loop signal (4 s is about 16 tokens).
ASTERISK_MAX_SECONDS = 4.0
# openai-whisper samples at most half the decoder's 448-token context.
LARGEST_TOKEN_LIMIT = 224
FAILURE_TEXT = 90  # characters of a failing transcript shown
CONFIGURATION_NAME = re.compile(r"full model|(encoder|decoder) (keep|skip) \d+")


@dataclass
class LayersConfig(CorpusStudyConfig):
    """The decoder logit lens, the encoder lens and layer removal, with WER, CER, empty outputs,
    repetition and hallucination measured on English corpus clips, non-speech and real speech."""

    corpus: CorpusSelection = field(default_factory=lambda: CorpusSelection(per_voice=8))
    nonspeech_per_kind: int = 3  # non-speech clips of each kind (silence, noises, tones, chords, clicks); 0: none
    asterisk: int = 0  # Asterisk English prompts (real speech, up to 4 s), spread over the list; 0: none
    max_tokens: int = 48  # token limit of each decode; a transcript that runs into it counts as a repetition
    batch_size: int = 16  # clips decoded together
    examples: int = 3  # clips shown token by token in the logit-lens table
    # a configuration (e.g. "decoder skip 2") whose English loops to trace to decoder heads, zeroing each in turn
    loop_heads: str = ""
    # English corpus clips outside the selection, drawn with the seed, to train the tuned lens on; 0: no tuned lens
    tuned_lens_clips: int = 0
    tuned_lens_steps: int = 40  # the tuned lens's training steps, each reading 64 tokens at every point
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)  # the lens and layer removal: --executor local|ray, ...

    def validate(self) -> None:
        super().validate()
        for name in ("nonspeech_per_kind", "asterisk", "examples", "tuned_lens_clips"):
            if getattr(self, name) < 0:
                raise WhisperLensError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        for name in ("batch_size", "tuned_lens_steps"):
            if getattr(self, name) < 1:
                raise WhisperLensError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 8 <= self.max_tokens <= LARGEST_TOKEN_LIMIT:
            raise WhisperLensError(f"--max-tokens must lie in 8-{LARGEST_TOKEN_LIMIT}, got {self.max_tokens}")
        if self.loop_heads and not CONFIGURATION_NAME.fullmatch(self.loop_heads):
            raise WhisperLensError(f"--loop-heads names a configuration such as 'decoder skip 2' or 'encoder keep 1', "
                                   f"not {self.loop_heads!r}")
        self.executor.validate()


def nonspeech_selection(selection: CorpusSelection) -> CorpusSelection:
    """The non-speech set of the selection's corpus."""
    return CorpusSelection(path=selection.path, sets=("nonspeech",))


def asterisk_clips(count: int) -> list:
    """`count` English Asterisk prompts of at most ASTERISK_MAX_SECONDS, spread evenly over the list."""
    return short_asterisk_prompts(count, ASTERISK_MAX_SECONDS)


def run(config: LayersConfig, context) -> LayersResult:
    from ...models.loading import tokenizer_for

    model = context.model(config.model)
    english = english_speech(context.corpus(config.corpus))
    if not english:
        raise WhisperLensError("no English clips with words in the selection")
    nonspeech = nonspeech_clips(context.corpus(nonspeech_selection(config.corpus)), config.nonspeech_per_kind) \
        if config.nonspeech_per_kind else []
    sets = {"english": english, "asterisk": asterisk_clips(config.asterisk), "nonspeech": nonspeech}
    sets = {name: clips for name, clips in sets.items() if clips}
    found = configurations(model.dims.n_audio_layer, model.dims.n_text_layer)
    traced = next((c for c in found if c.name == config.loop_heads), None)
    if config.loop_heads and traced is None:
        raise WhisperLensError(f"--loop-heads {config.loop_heads!r}: {config.model.model} has no such configuration "
                               f"(its configurations: {', '.join(c.name for c in found)})")
    seconds = {}

    translators, tuned = None, None
    if config.tuned_lens_clips:
        start = time.perf_counter()
        translators, tuned, training_kl = tuned_lens(model, config, context, english)
        seconds["tuned_lens"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    lens = lens_sharded(model, english, config.corpus, config, context, translators)
    seconds["lens"] = round(time.perf_counter() - start, 1)
    arrays = {f"lens.{name}": getattr(lens, name) for name in LENS_ARRAYS if getattr(lens, name) is not None}
    if translators is not None:
        arrays["lens.tuned_training_kl"] = training_kl

    rows = [{"name": c.name, "stack": c.stack, "kept": list(c.kept), "removed_fraction": round(c.removed_fraction, 4),
             "keeps_first": c.keeps_first} for c in found]
    transcripts, failures, loop_heads = {}, [], None
    for set_name, clips in sets.items():
        start = time.perf_counter()
        decodes = decode_set(model, set_name, clips, found, config, context)
        seconds[set_name] = round(time.perf_counter() - start, 1)
        counts = measure_set(set_name, clips, decodes, rows, failures)
        arrays.update({f"{set_name}.{name}": values for name, values in counts.items()})
        transcripts[set_name] = {"ids": [clip.id for clip in clips], "references": [clip.text for clip in clips],
                                 "outputs": {row["name"]: texts for row, texts in zip(rows, decodes.texts)}}
        if set_name == "english" and traced is not None:
            start = time.perf_counter()
            looping = [clip for clip, loops in zip(clips, counts["repetition"][found.index(traced)]) if loops]
            heads = trace_loops(model, looping, traced, config.max_tokens, config.batch_size, context.progress) \
                if looping else []
            loop_heads = {"configuration": traced.name, "clips": len(looping), "heads": heads}
            seconds["loop_heads"] = round(time.perf_counter() - start, 1)

    folder = context.folder
    folder.mkdir(parents=True, exist_ok=True)
    points = summarise_points(lens)
    lens_figure(points, folder, config.model.model)
    for stack in ("encoder", "decoder"):
        removal_figure(stack, stack_rows(rows, stack), folder, config.model.model)
    if loop_heads is not None and loop_heads["heads"]:
        heads_figure(loop_heads, model.dims.n_text_layer, model.dims.n_text_head, folder, config.model.model)
    summary = {"model": config.model.model,
               "layers": {"encoder": model.dims.n_audio_layer, "decoder": model.dims.n_text_layer},
               "clips": {name: len(clips) for name, clips in sets.items()},
               "seconds": seconds,
               "lens": {"tokens": int(lens.targets.size), "points": points, "tuned": tuned,
                        "examples": token_examples(lens, tokenizer_for(model), [c.id for c in english], config.examples)},
               "configurations": rows, "failures": failures, "transcripts": transcripts, "loop_heads": loop_heads}
    return LayersResult(config, summary, arrays, folder)


def decode_set(model, set_name: str, clips: list, found: list, config: LayersConfig, context):
    """Every configuration's transcripts of a set: the corpus's sets in shards run by `config.executor`;
    the Asterisk prompts, outside the corpus (a worker on another node may not have them), here."""
    if set_name == "asterisk":
        return decode_configurations(model, clips, found, config.max_tokens, config.batch_size, context.progress,
                                     desc=set_name)
    if set_name == "nonspeech":
        return decode_sharded(model, clips, nonspeech_selection(config.corpus), found, config, context, set_name,
                              per_kind=config.nonspeech_per_kind)
    return decode_sharded(model, clips, config.corpus, found, config, context, set_name)


def tuned_lens(model, config: LayersConfig, context, evaluated: list):
    """Train the tuned lens's translators on English clips held out from the evaluated ones:
    the translators, what the summary says of their training, and the training KL at each step."""
    pool = [clip for clip in context.corpus(replace(config.corpus, clips=None, per_voice=None))
            if clip.language == "en" and clip.words]
    clips = held_out_clips(pool, evaluated, config.tuned_lens_clips, config.seed)
    data = training_set(model, clips, config.batch_size, config.seed, context.show_progress)
    translators, losses = train_translators(model, data, config.tuned_lens_steps, config.seed,
                                            progress=context.progress)
    tuned = {"clips": len(clips), "clip_ids": [clip.id for clip in clips], "tokens": int(data.vectors.shape[1]),
             "steps": config.tuned_lens_steps,
             "batch_tokens": BATCH_TOKENS, "learning_rate": LEARNING_RATE, "seed": config.seed,
             "training_kl_first": round(losses[0], 4), "training_kl_last": round(losses[-1], 4)}
    return translators, tuned, np.asarray(losses, dtype=np.float32)


def measure_set(set_name: str, clips, decodes, rows: list[dict], failures: list[dict]) -> dict:
    """Score one set's transcripts: each row (configuration) gets the set's rates, `failures` each
    configuration's first failing clip; returns the per-clip counts."""
    speech = set_name != "nonspeech"
    counts = score_speech([clip.text for clip in clips], decodes) if speech else score_nonspeech(decodes)
    for index, row in enumerate(rows):
        row[set_name] = (speech_rates if speech else nonspeech_rates)(counts, index)
        failures += first_failure(row["name"], set_name, clips, decodes.texts[index], counts, index)
    return counts


def first_failure(configuration: str, set_name: str, clips, texts, counts, row: int) -> list[dict]:
    """The configuration's first failing clip of the set (none for the full model's clean runs)."""
    for index, clip in enumerate(clips):
        kind = failure_kind(counts, row, index)
        if kind is not None:
            return [{"configuration": configuration, "set": set_name, "clip": clip.id, "failure": kind,
                     "reference": clip.text if set_name != "nonspeech" else f"({clip.meta.get('kind', 'non-speech')})",
                     "output": texts[index]}]
    return []


def stack_rows(rows: list[dict], stack: str) -> list[dict]:
    """The full model and the configurations that remove blocks of `stack`."""
    return [row for row in rows if row["stack"] in (None, stack)]


class LayersResult(Result):
    study = "layers"
    config_type = LayersConfig

    def views(self):
        s = self.summary
        model, layers, clips = s["model"], s["layers"], s["clips"]
        sets = [name for name in SETS if name in clips]
        overview = Text(
            f"{model}: {layers['encoder']} encoder and {layers['decoder']} decoder blocks. Clips: "
            + ", ".join(f"{clips[name]} {name}" for name in sets)
            + f". The logit lens read {s['lens']['tokens']} teacher-forced reference tokens of the English clips. "
            + "Time (s): " + ", ".join(f"{name} {s['seconds'][name]}" for name in ("tuned_lens", "lens", *SETS, "loop_heads")
                                       if name in s["seconds"]) + ".\n\n"
            "Models of different depths are compared by the fraction of a stack's depth removed. Keeping the first n "
            "encoder blocks is the encoder lens at layer n: the skipped blocks pass the residual stream through and "
            "ln_post follows, so one curve shows both.")
        tuned = s["lens"].get("tuned")
        lens_numbers = Table(["point", "depth", "top-1 = model's", "KL (nats)", "top-1 = reference", "median rank",
                              "P(reference)"] + (["tuned: top-1 = model's", "tuned: KL (nats)"] if tuned else []),
                             [[p["point"], p["depth"], p["top1_agreement"], p["kl"], p["top1_accuracy"], p["median_rank"],
                               p["p_correct"]] + ([p["tuned_top1_agreement"], p["tuned_kl"]] if tuned else [])
                              for p in s["lens"]["points"]])
        blocks = [overview,
                  Figure("lens.png", f"{model} decoder logit lens{' and tuned lens' if tuned else ''}: agreement with the "
                         "model's own top token, the reference token's rank and probability, and KL to the output, at every "
                         "sub-layer", numbers=lens_numbers,
                         caption="Teacher-forced on the corpus's reference transcripts, which are lowercase and unpunctuated, "
                                 "so 'top-1 = reference' stays below 1 at the output; 'top-1 = model's' reaches 1 there by "
                                 "construction. 'i post' is block i + 1's input." + tuned_lens_note(tuned))]
        for example in s["lens"]["examples"]:
            blocks.append(Table(["reference", *(f"top @ {p}" for p in example["points"])], example["rows"],
                                caption=f"Logit lens token by token, clip {example['clip']}"))
        for stack in ("encoder", "decoder"):
            rows = stack_rows(s["configurations"], stack)
            blocks.append(Figure(f"removal_{stack}.png",
                                 f"{model}: WER and failure rates against the fraction of {stack} depth removed, with the "
                                 "seed's whisper-medium WER overlaid", numbers=removal_table(rows, sets),
                                 caption="Rates in %. WER, CER and inserted words are per reference word (character); "
                                         "empty and repetition are per clip, and empty means no word after normalising "
                                         "('...' is empty); on non-speech, 'output' is the share of clips with a word "
                                         "(all hallucinated). Black squares: published whisper-medium "
                                         "numbers (seed 002), not measured here."))
        blocks.append(Table(["stack", "layers kept of 24", "fraction removed", "WER %"],
                            [[stack, kept, round(fraction, 4), wer] for stack in ("encoder", "decoder")
                             for kept, fraction, wer in seed_points(stack)],
                            caption=f"Overlaid points: {SEED_MEDIUM['source']}."))
        blocks += loop_head_views(s.get("loop_heads"), model)
        blocks.append(Table(["configuration", "set", "clip", "failure", "reference", "output"],
                            [[f["configuration"], f["set"], f["clip"], f["failure"], f["reference"], shorten(f["output"])]
                             for f in s["failures"]],
                            caption="Failure examples: each configuration's first failing clip per set."))
        return blocks


def tuned_lens_note(tuned: dict | None) -> str:
    if tuned is None:
        return ""
    return (f" Tuned lens: one affine translator per point (identity at the start) trained to minimise KL(final ‖ lens) "
            f"on {tuned['tokens']} tokens of {tuned['clips']} English clips held out from these (drawn with seed "
            f"{tuned['seed']}), {tuned['steps']} steps of {tuned['batch_tokens']} tokens, SGD with Nesterov momentum, "
            f"learning rate {tuned['learning_rate']}; its training KL (mean over points) went from "
            f"{tuned['training_kl_first']} to {tuned['training_kl_last']} nats. Its columns are measured on the same "
            "evaluation tokens as the logit lens's.")


def loop_head_views(traced: dict | None, model: str) -> list:
    if traced is None:
        return []
    if not traced["heads"]:
        return [Text(f"No English clip loops under {traced['configuration']}: no loop to trace to a head.")]
    ranked = sorted(traced["heads"], key=lambda h: (-h["loops_stopped"], h["wer"]))
    numbers = Table(["attention", "head", "loops stopped %", "WER % (those clips)"],
                    [[h["attention"], h["head"], round(100 * h["loops_stopped"], 1), round(100 * h["wer"], 1)] for h in ranked])
    return [Figure("loop_heads.png", f"{model}, {traced['configuration']}: the share of its {traced['clips']} looping "
                   "English clips that stop looping when one decoder head is zeroed, per head", numbers=numbers,
                   caption="Each head of the blocks the configuration runs is zeroed alone (self-attention and "
                           "cross-attention), and the looping clips are decoded again.")]


def removal_table(rows: list[dict], sets: list[str]) -> Table:
    header = ["configuration", "removed"]
    for name in sets:
        header += ([f"{name} output %", f"{name} repetition %"] if name == "nonspeech" else
                   [f"{name} WER %", f"{name} CER %", f"{name} empty %", f"{name} repetition %", f"{name} inserted %"])
    body = []
    for row in rows:
        cells = [row["name"], row["removed_fraction"]]
        for name in sets:
            keys = (("hallucination_rate", "repetition_rate") if name == "nonspeech" else
                    ("wer", "cer", "empty_rate", "repetition_rate", "hallucination_rate"))
            cells += [round(100 * row[name][key], 1) for key in keys]
        body.append(cells)
    return Table(header, body)


def shorten(text: str) -> str:
    return text if len(text) <= FAILURE_TEXT else text[: FAILURE_TEXT - 1] + "…"


STUDY = Study("layers", "Layers: logit lens, encoder lens and layer removal", LayersConfig, run, LayersResult,
              description="The decoder logit lens, the encoder lens and layer removal, with WER, CER, repetition and "
                          "hallucination on English corpus clips, non-speech and Asterisk prompts.")
