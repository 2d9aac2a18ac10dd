"""The locality study: the config, run(config, context), the result and its views.

    whisperlens locality run                                   # tiny.en, the default (72 clips, 100 words; minutes)
    whisperlens locality run --per-voice 23 --asterisk 20 --head-clips 8 --stat-clips 8 \\
        --removal-words 200 --relevance-clips 4 --relevance-words 200   # the issue's ≥ 200 setting (207 clips, 200 words)
    whisperlens locality remove AUDIO --word "questions"       # one edit, original and edited transcript
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ...audio import encoder_positions, load_audio
from ...corpus.selection import CorpusSelection, short_asterisk_prompts
from ...distributed import ExecutorSpec
from ...errors import WhisperLensError
from ...greedy import cross_kv, select_rows
from ...models.loading import tokenizer_for
from ...study import CorpusStudyConfig, Figure, Result, Study, Table, Text
from ...transcripts import padding_features
from . import figures
from .command import add_commands
from .examples import example_transcripts, seed_edits, word_spans
from .heads import LOCAL_SHARE, LOCAL_WINDOW, MEASURES, SCOPES, WINDOWS, head_locality
from .relevance import FRACTIONS, MAPS, area, chefer_token_maps, clip_maps, perturbation_curves, removal_orders
from .removal import clean_features, plan_edits, run_edits, score_edits, summarise_edits, whisper_word_times
from .scoring import clip_counts, rates
from .sweep import HEAD_HALF_WIDTH, decode_masks, global_masks, group_masks, head_masks, sweep_english
from .targeting import relevance_spans

SETS = ("english", "asterisk")  # the order they show in (result.json sorts a dict's keys)
ASTERISK_MAX_SECONDS = 4.0  # real prompts up to this long keep the 48-token limit a loop signal


@dataclass
class LocalityConfig(CorpusStudyConfig):
    """Encoder locality: per-head locality statistics, the ±k band sweep, word removal in embedding
    space, and relevance maps with a faithfulness test."""

    corpus: CorpusSelection = field(default_factory=lambda: CorpusSelection(per_voice=8))
    half_widths: tuple[int, ...] = (200, 100, 75, 50, 20, 10, 5)  # band half-widths k of the sweep (with no mask)
    asterisk: int = 8  # Asterisk English prompts (real speech, up to 4 s) in the band sweep; 0: none
    stat_clips: int = 4  # clips (the selection's first) whose attention gives the per-head statistics
    head_clips: int = 8  # clips (the selection's first) decoded with each head masked to k=10 alone
    removal_words: int = 100  # target words of the word-removal test (from clips transcribed exactly)
    margins: tuple[int, ...] = (0, 2, 5)  # frames added each side of a word's span
    relevance_clips: int = 2  # clips whose every relevance map is computed (the perturbation test)
    relevance_words: int = 24  # of the removal words, how many are also targeted by their token relevance map
    max_tokens: int = 48  # token limit of each decode; a transcript that reaches it counts as a repetition
    batch_size: int = 16  # clips decoded together
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)  # the English band sweeps: --executor local|ray, ...

    def validate(self) -> None:
        super().validate()
        for name in ("asterisk", "removal_words", "relevance_clips", "relevance_words", "head_clips"):
            if getattr(self, name) < 0:
                raise WhisperLensError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.stat_clips < 1 or self.batch_size < 1:
            raise WhisperLensError("--stat-clips and --batch-size must be positive")
        if not self.half_widths or any(k < 0 for k in self.half_widths):
            raise WhisperLensError(f"--half-widths are band half-widths of 0 or more, got {self.half_widths}")
        if any(m < 0 for m in self.margins) or not self.margins:
            raise WhisperLensError(f"--margins are frame counts of 0 or more, got {self.margins}")
        if not 8 <= self.max_tokens <= 224:
            raise WhisperLensError(f"--max-tokens must lie in 8-224, got {self.max_tokens}")
        self.executor.validate()


@contextmanager
def timed(seconds: list, name: str):
    """Append [name, seconds its body took] to `seconds` (a list: result.json sorts a dict's keys)."""
    start = time.perf_counter()
    yield
    seconds.append([name, round(time.perf_counter() - start, 1)])


def run(config: LocalityConfig, context) -> LocalityResult:
    from ..example import bundled_example

    model = context.model(config.model)
    english = [clip for clip in context.corpus(config.corpus) if clip.language == "en" and clip.words]
    if not english:
        raise WhisperLensError("no English clips with words in the selection")
    folder = context.folder
    folder.mkdir(parents=True, exist_ok=True)
    name, seconds, arrays = config.model.model, [], {}
    n_layers, n_heads = model.dims.n_audio_layer, model.dims.n_audio_head
    torch.manual_seed(config.seed)

    with timed(seconds, "head statistics"):
        stats = head_locality(model, english[: config.stat_clips], progress=context.progress)
    arrays["head_stats"] = stats.values
    local, global_ = stats.local_heads(), stats.global_heads()
    stats_summary = {scope: {measure: np.round(stats.get(scope, measure), 4).tolist() for measure in MEASURES}
                     for scope in SCOPES}

    sets = {"english": english, "asterisk": short_asterisk_prompts(config.asterisk, ASTERISK_MAX_SECONDS)}
    sets = {key: clips for key, clips in sets.items() if clips}
    masks = global_masks((None, *config.half_widths)) + group_masks(local, global_)
    sweep_rows = [{"name": m.name, "family": m.family, "half_width": m.half_width} for m in masks]
    for set_name, clips in sets.items():
        chosen = masks if set_name == "english" else masks[: len(config.half_widths) + 1]
        with timed(seconds, f"band sweep, {set_name}"):
            outputs = sweep_english(model, clips, chosen, config, context, set_name) if set_name == "english" else \
                decode_masks(model, clips, chosen, config.max_tokens, config.batch_size, context.progress, set_name)
        for row, output in zip(sweep_rows, outputs):
            counts = clip_counts([clip.text for clip in clips], output)
            row[set_name] = rates(counts, output.log_prob)
            row.setdefault("examples", {})[set_name] = output.texts[:2]
    head_rows = []
    if config.head_clips:
        head_set = english[: config.head_clips]
        with timed(seconds, "one head at a time"):
            per_head = head_masks(n_layers, n_heads)
            outputs = sweep_english(model, head_set, [global_masks((None,))[0], *per_head], config, context,
                                    "one head at k=10")
        references = [clip.text for clip in head_set]
        head_baseline = rates(clip_counts(references, outputs[0]), outputs[0].log_prob)
        for mask, output in zip(per_head, outputs[1:]):
            layer, head = mask.heads[0]
            head_rows.append({"layer": layer, "head": head, "local": (layer, head) in local,
                              "english": rates(clip_counts(references, output), output.log_prob)})
    else:
        head_baseline = None

    audio = load_audio(bundled_example())
    with timed(seconds, "bundled example"):
        example_rows = example_transcripts(model, audio, (None, *config.half_widths))
        spans = word_spans(model, audio)
        edits_example = seed_edits(model, audio, spans)

    with timed(seconds, "relevance"):
        relevance = relevance_section(model, english, config, folder, audio)
    with timed(seconds, "word removal"):
        removal = removal_section(model, english, config, relevance.pop("token_maps"), context.progress)
    arrays.update({f"timing.{k}": v.astype(np.float32) for k, v in removal.pop("offsets").items()})

    figures.heads_figure(stats_summary, folder, name)
    figures.sweep_figure([r for r in sweep_rows if r["family"] == "all"], folder, name)
    groups = [r for r in sweep_rows if r["family"] in ("local", "global") or r["half_width"] is None]
    if head_rows:
        figures.head_sweep_figure(head_rows, groups, head_baseline, (n_layers, n_heads), folder, name)
    if removal["rows"]:
        figures.removal_figure(removal["rows"], folder, name)
    summary = {"model": name, "layers": n_layers, "heads": n_heads, "seconds": seconds,
               "clips": {key: len(clips) for key, clips in sets.items()}, "stat_clips": stats.clips,
               "head_clips": config.head_clips, "locality": stats_summary,
               "local_heads": [list(h) for h in local], "global_heads": [list(h) for h in global_],
               "sweep": sweep_rows, "head_sweep": head_rows, "head_baseline": head_baseline,
               "example": {"transcripts": example_rows, "edits": edits_example, "words": spans},
               "relevance": relevance, "removal": removal}
    return LocalityResult(config, summary, arrays, folder)


def relevance_section(model, clips, config: LocalityConfig, folder, audio) -> dict:
    """The example's encoder maps (seed variant and rollout) as heat maps; on the first clips, every
    map, the perturbation test and the token maps (kept for relevance targeting)."""
    from ...audio import log_mel
    from .relevance import rollout, seed_relevance

    mel = log_mel(audio, model.dims.n_mels)[None]
    n_example = encoder_positions(len(audio))
    seed = seed_relevance(model, mel).cpu().numpy()
    figures.relevance_figure({"seed variant (R += Ā·R)": seed, "rollout": rollout(model, mel).cpu().numpy()}, n_example,
                             folder, "relevance_example.png",
                             f"{config.model.model}: encoder relevance on the bundled example (speech ends at the dashed line)")
    after = seed[n_example + 50:]  # output rows well past the speech
    back = after[:, max(0, n_example - 25): n_example].sum(1) / np.maximum(after.sum(1), 1e-12)
    padding_kv = cross_kv(model, padding_features(model))
    tokenizer = tokenizer_for(model)
    rng = np.random.default_rng(config.seed)
    curves: dict[str, list[np.ndarray]] = {}
    token_maps = {}
    for index, clip in enumerate(clips[: config.relevance_clips]):
        maps = clip_maps(model, clip, tokenizer)
        token_maps[index] = maps
        with torch.no_grad():
            kv = cross_kv(model, model.run(log_mel(np.asarray(clip.audio, dtype=np.float32), model.dims.n_mels)[None]))
        for key, curve in perturbation_curves(model, clip, kv, padding_kv, removal_orders(maps.scores, rng),
                                              tokenizer=tokenizer).items():
            curves.setdefault(key, []).append(curve)
    mean_curves = {key: np.mean(values, axis=0).round(4).tolist() for key, values in curves.items()}
    areas = {key: round(area(np.array(curve)), 4) for key, curve in mean_curves.items()}
    faithfulness = [{"map": m, "most_first_auc": areas[f"{m} most"], "least_first_auc": areas[f"{m} least"],
                     "gap": round(areas[f"{m} least"] - areas[f"{m} most"], 4)} for m in MAPS] if curves else []
    if curves:
        figures.faithfulness_figure(mean_curves, list(FRACTIONS), folder, config.model.model)
        first = token_maps[0]
        words = [tokenizer.decode([t]) for t in _text_tokens(tokenizer, clips[0].text)]
        figures.token_maps_figure({"Chefer (target token)": first.tokens["chefer"],
                                   "raw last-layer cross-attention": first.tokens["cross_attention"]},
                                  words[: len(first.targets)], encoder_positions(len(clips[0].audio)), folder,
                                  f"{config.model.model}: token relevance on '{clips[0].text}'")
    return {"example_back_share": round(float(back.mean()), 4), "example_frames": n_example,
            "clips": len(token_maps), "fractions": list(FRACTIONS), "curves": mean_curves, "orders": list(mean_curves),
            "random_auc": areas.get("random"), "faithfulness": faithfulness,
            "most_faithful": max(faithfulness, key=lambda row: row["gap"])["map"] if faithfulness else None,
            "token_maps": token_maps}


def _text_tokens(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(" " + text.strip())


def removal_section(model, clips, config: LocalityConfig, token_maps: dict, progress) -> dict:
    """Word removal over the corpus, each word targeted by the alignment, Whisper's timestamps and (on
    the first `relevance_words` words) its token relevance map."""
    from ...transcripts import word_splitter

    if config.removal_words == 0:
        return {"rows": [], "offsets": {}, "clips": 0}
    words_of = word_splitter()
    tokenizer = tokenizer_for(model)
    # Clips hold 3-7 words: half as many clips as words is plenty even when some are mistranscribed.
    candidates = clips[: max(config.removal_words // 2 + 1, config.relevance_clips)]
    kv, texts = clean_features(model, candidates, config.batch_size, config.max_tokens)
    exact = [words_of(text) == words_of(clip.text) for clip, text in zip(candidates, texts)]
    whisper_times = {i: whisper_word_times(model, tokenizer, clip, select_rows(kv, slice(i, i + 1))) if exact[i] else None
                     for i, clip in enumerate(candidates)}
    chefer_rows = {i: maps.tokens["chefer"] for i, maps in token_maps.items()}
    chefer_rows.update(token_maps_for_targeting(model, tokenizer, candidates, exact, chefer_rows, config, progress))
    spans = {"alignment": lambda i: [(s, e) for _, s, e in candidates[i].words] if exact[i] else None,
             "whisper": lambda i: None if whisper_times[i] is None else [(s, e) for _, s, e in whisper_times[i]],
             "relevance": lambda i: (relevance_spans(tokenizer, candidates[i], chefer_rows[i])
                                     if exact[i] and i in chefer_rows else None)}
    edits = plan_edits(candidates, spans, config.margins, config.removal_words)
    outputs = run_edits(model, candidates, kv, cross_kv(model, padding_features(model)), edits, config.max_tokens, progress)
    scores = score_edits(candidates, edits, outputs)
    offsets = {"starts": [], "ends": []}
    for i, times in whisper_times.items():
        if times is not None:
            for (_, start, end), (_, w_start, w_end) in zip(candidates[i].words, times):
                offsets["starts"].append(1000 * (w_start - start))
                offsets["ends"].append(1000 * (w_end - end))
    offsets = {k: np.array(v) for k, v in offsets.items()}
    timing = ({key: {"median_ms": round(float(np.median(v)), 1), "mean_abs_ms": round(float(np.abs(v).mean()), 1)}
               for key, v in offsets.items()} if offsets["starts"].size else {})
    examples = [{"clip": candidates[e.clip].id, "target": candidates[e.clip].words[e.word][0], "method": e.method,
                 "frames": f"{e.start}-{e.stop}", "output": " ".join(out)}
                for e, out in zip(edits, outputs) if e.margin == config.margins[0]][:9]
    return {"rows": summarise_edits(edits, scores), "offsets": offsets, "timing": timing, "examples": examples,
            "clips": int(sum(exact)), "candidates": len(candidates)}


def token_maps_for_targeting(model, tokenizer, candidates, exact, known: dict, config: LocalityConfig, progress) -> dict:
    """Chefer token maps (tokens, 1500) of the exactly transcribed candidates, in order, until their
    words reach `relevance_words` (capped at `removal_words`); clips in `known` (the relevance
    clips') are counted, not recomputed. Only Chefer's rows: relevance targeting needs no other map."""
    wanted, covered, chosen = min(config.relevance_words, config.removal_words), 0, []
    for index, clip in enumerate(candidates):
        if covered >= wanted:
            break
        if exact[index]:
            covered += len(clip.words)
            if index not in known:
                chosen.append(index)
    steps = progress(chosen, desc="relevance targeting", unit="clip") if progress else chosen
    return {index: chefer_token_maps(model, candidates[index], tokenizer) for index in steps}


class LocalityResult(Result):
    study = "locality"
    config_type = LocalityConfig

    def views(self):
        s = self.summary
        model = s["model"]
        blocks = [Text(
            f"{model}: {s['layers']} encoder layers of {s['heads']} heads. Band sweep on "
            + ", ".join(f"{s['clips'][key]} {key} clips" for key in SETS if key in s["clips"])
            + f"; per-head statistics on {s['stat_clips']} clips; each head masked alone on {s['head_clips']} clips. "
            + "Time (s): " + ", ".join(f"{key} {value}" for key, value in s["seconds"]) + ".")]
        blocks += heads_views(s)
        blocks += sweep_views(s)
        blocks += example_views(s)
        blocks += relevance_views(s)
        blocks += removal_views(s)
        return blocks


def heads_views(s: dict) -> list:
    locality = s["locality"]
    local = {tuple(h) for h in s["local_heads"]}
    rows = []
    for layer in range(s["layers"]):
        for head in range(s["heads"]):
            rows.append([layer, head, "local" if (layer, head) in local else "global"]
                        + [locality[scope][measure][layer][head] for scope in SCOPES for measure in MEASURES])
    header = ["layer", "head", "class"] + [f"{scope}: {measure}" for scope in SCOPES for measure in MEASURES]
    return [Figure("heads.png", f"{s['model']}: mean attention distance and attention mass within ±10 frames, per head, "
                   "over the clip's frames and with the padding", numbers=Table(header, rows),
                   caption=f"Rule: a head is local when, over the clip's frames, at least {LOCAL_SHARE:.0%} of its attention "
                           f"lies within ±{LOCAL_WINDOW} frames (±{20 * LOCAL_WINDOW} ms); else global. Entropy is "
                           f"normalised by log(keys); 'within_k' for k in {WINDOWS}. {len(local)} of "
                           f"{s['layers'] * s['heads']} heads are local.")]


def _rate_cells(rates: dict | None) -> list:
    if rates is None:
        return ["", "", "", ""]
    return [round(100 * rates["wer"], 1), round(100 * rates["empty_rate"], 1), round(100 * rates["repetition_rate"], 1),
            rates["log_prob"]]


def sweep_views(s: dict) -> list:
    sets = [key for key in SETS if key in s["clips"]]
    header = ["mask"] + [f"{name} {metric}" for name in sets for metric in ("WER %", "empty %", "repetition %", "log p")]
    rows = [[r["name"]] + [cell for name in sets for cell in _rate_cells(r.get(name))] for r in s["sweep"]]
    blocks = [Figure("sweep.png", f"{s['model']}: WER, empty and repetition rates and the reference's log-probability "
                     "against the band half-width k on every head", numbers=Table(header, rows),
                     caption="Also the local heads together and the global heads alone, at k=10 (English clips only). "
                             "Repetition: the 48-token limit reached, or an n-gram said three times in a row.")]
    if s["head_sweep"]:
        base = s["head_baseline"]
        numbers = Table(["layer", "head", "class", "WER %", "WER change (points)", "empty %", "repetition %", "log p"],
                        [[h["layer"], h["head"], "local" if h["local"] else "global", round(100 * h["english"]["wer"], 1),
                          round(100 * (h["english"]["wer"] - base["wer"]), 1), round(100 * h["english"]["empty_rate"], 1),
                          round(100 * h["english"]["repetition_rate"], 1), h["english"]["log_prob"]] for h in s["head_sweep"]],
                        caption=f"No mask on these clips: WER {100 * base['wer']:.1f} %, log p {base['log_prob']}.")
        blocks.append(Figure("head_sweep.png", f"{s['model']}: each head masked alone to ±{HEAD_HALF_WIDTH} frames, and "
                             "the local and global groups", numbers=numbers))
    return blocks


def example_views(s: dict) -> list:
    example = s["example"]
    return [Table(["k", "transcript of the bundled example"],
                  [["none" if r["half_width"] is None else r["half_width"], r["text"]] for r in example["transcripts"]],
                  caption="The seeds' table: the ±k band on every head of every layer."),
            Table(["edit", "frames", "transcript"],
                  [[e["edit"], f"{e['start']}-{e['stop']}", e["text"]] for e in example["edits"]],
                  caption="The seeds' word removal on the bundled example: encoder outputs replaced by those of "
                          "padding-only audio.")]


def relevance_views(s: dict) -> list:
    r = s["relevance"]
    blocks = [Figure("relevance_example.png", f"{s['model']}: encoder relevance maps of the bundled example",
                     numbers=Table(["measure", "value"], [["frames of audio", r["example_frames"]],
                                                          ["seed variant: share of each output row ≥ 1 s past the speech "
                                                           "on the last 0.5 s of speech", r["example_back_share"]]]),
                     caption="Past the dashed line there is no audio: the seeds' pattern is rows past it that draw on the "
                             "end of speech.")]
    if r["faithfulness"]:
        curves = Table(["order"] + [str(f) for f in r["fractions"]], [[k, *r["curves"][k]] for k in r["orders"]])
        blocks += [Figure("faithfulness.png", f"{s['model']}: perturbation test on {r['clips']} clips", numbers=curves,
                          caption="Frames replaced by the padding-only audio's encoder output, most or least relevant first."),
                   Table(["map", "AUC most-relevant first", "AUC least-relevant first", "gap (least − most)"],
                         [[f["map"], f["most_first_auc"], f["least_first_auc"], f["gap"]] for f in r["faithfulness"]],
                         caption=f"Area under the mean log-probability curve; random order: {r['random_auc']}. "
                                 f"Most faithful (largest gap): {r['most_faithful']}."),
                   Figure("relevance_tokens.png", f"{s['model']}: per-token relevance on the first clip",
                          numbers=Table(["map"], [["Chefer"], ["raw cross-attention"]]),
                          caption="Each row is one reference token's map over the clip's frames, scaled to its maximum.")]
    return blocks


def removal_views(s: dict) -> list:
    removal = s["removal"]
    if not removal["rows"]:
        return []
    numbers = Table(["targeting", "margin (frames)", "words", "gone %", "others kept %", "exact %", "neighbour lost %",
                     "neighbour lost, target kept %"],
                    [[r["method"], r["margin"], r["words"], round(100 * r["gone_rate"], 1), round(100 * r["kept_rate"], 1),
                      round(100 * r["exact_rate"], 1), round(100 * r["neighbour_lost_rate"], 1),
                      round(100 * r["neighbour_instead_rate"], 1)] for r in removal["rows"]])
    timing = removal.get("timing", {})
    blocks = [Figure("removal.png", f"{s['model']}: word removal by target span", numbers=numbers,
                     caption=f"Words of the {removal['clips']} of {removal['candidates']} clips whose clean transcript "
                             "matches the reference. Relevance targeting covers the first of those words "
                             "(--relevance-words): each needs its own backward pass per token.")]
    if timing:
        blocks.append(Table(["boundary", "median offset (ms)", "mean |offset| (ms)"],
                            [[k, timing[k]["median_ms"], timing[k]["mean_abs_ms"]] for k in ("starts", "ends") if k in timing],
                            caption="Whisper's word timestamps minus the corpus's alignment (+: Whisper later)."))
    blocks.append(Table(["clip", "target", "targeting", "frames", "edited transcript"],
                        [[e["clip"], e["target"], e["method"], e["frames"], e["output"]] for e in removal["examples"]],
                        caption="The first edits, at the smallest margin."))
    return blocks


STUDY = Study("locality", "Encoder locality: relevance, per-head locality, the ±k band and word removal", LocalityConfig,
              run, LocalityResult, add_commands=add_commands,
              description="Per-head locality of the encoder's self-attention, the ±k band sweep (all heads, one head, "
                          "local and global heads), word removal in embedding space and relevance maps.")
