"""The patching study: the config, run(config, context), the result and its views.

    whisperlens patching run                                   # tiny.en, a few minutes: subsets of the pairs
    whisperlens patching run --pairs 320 --position-pairs 320 --window-pairs 64 --crosslingual-pairs 165
    whisperlens patching pair A.wav B.wav                      # any two recordings: layer x position heatmap
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ...corpus.selection import CorpusSelection
from ...distributed import ExecutorSpec
from ...errors import WhisperLensError
from ...patching import LabelledArray
from ...study import CorpusStudyConfig, Figure, ModelSpec, Result, Study, Table, Text
from .crosslingual import transfer, transfer_summary
from .figures import restricted_figure
from .matrix import distinguishes, matrix_summary
from .pair import add_commands
from .pairs import minimal_pairs, translation_pairs
from .positions import REGIONS, SOURCES, group_summary, restricted, restricted_summary, window_offsets, windows
from .sharded import layer_matrix_sharded

# Seed 004's published numbers (Whisper tiny, multilingual; 869 English pairs, 162 English/Spanish;
# gTTS audio), quoted, not re-measured here.
SEED = {"override": {"diagonal": 0.951, "off_diagonal": 0.536, "pairs": 869,
                     "matrix": [[0.95, 0.50, 0.50, 0.50], [0.50, 0.95, 0.50, 0.51],
                                [0.50, 0.64, 0.95, 0.52], [0.50, 0.52, 0.74, 0.95]]},
        "transfer": {"rate": 0.666, "same_layer": 0.708, "cross_layer": 0.652, "pairs": 162,
                     "matrix": [[0.72, 0.93, 0.55, 0.12], [1.00, 0.71, 0.87, 0.02],
                                [1.00, 0.33, 0.70, 0.16], [0.99, 0.99, 0.87, 0.70]]}}
PARTS = ("matrix", "positions", "windows", "crosslingual")  # the order they run and show in (result.json sorts keys)
WINDOW_BEFORE_MS, WINDOW_AFTER_MS = 200, 800  # the sliding window's span around the word's onset


@dataclass
class PatchingConfig(CorpusStudyConfig):
    """Activation patching on the corpus's minimal pairs (the seed's override matrix with a binary and a
    normalised logit-difference metric, position-restricted patches, baselines) and English->Spanish
    transfer on the multilingual model."""

    corpus: CorpusSelection = field(default_factory=lambda: CorpusSelection(sets=("minimal_pairs", "en_es_pairs")))
    pairs: int = 16  # minimal pairs in the override matrix, spread over the set (the corpus has 320)
    position_pairs: int = 8  # minimal pairs patched at the word's frames / outside them, with baselines; 0: none
    window_pairs: int = 4  # minimal pairs patched in sliding windows; 0: none
    window: int = 5  # the sliding window's width and step, in encoder positions (20 ms each)
    crosslingual_pairs: int = 4  # English/Spanish pairs on the multilingual model; 0: none
    crosslingual_model: str = "base"  # a multilingual model for the transfer matrix
    batch_size: int = 8  # pairs patched together
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)  # the override matrix: --executor local|ray, ...

    def validate(self) -> None:
        super().validate()
        if self.pairs < 1:
            raise WhisperLensError(f"--pairs must be at least 1, got {self.pairs}")
        for name in ("position_pairs", "window_pairs", "crosslingual_pairs"):
            if getattr(self, name) < 0:
                raise WhisperLensError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.position_pairs == 1:
            raise WhisperLensError("--position-pairs must be 0 or at least 2 (the random-pair baseline)")
        if not 1 <= self.window <= 50:
            raise WhisperLensError(f"--window must lie in 1-50 positions, got {self.window}")
        if self.batch_size < 1:
            raise WhisperLensError(f"--batch-size must be positive, got {self.batch_size}")
        self.executor.validate()


def run(config: PatchingConfig, context) -> PatchingResult:
    model = context.model(config.model)
    corpus = context.corpus(config.corpus)
    multilingual = None
    if config.crosslingual_pairs:  # checked first: a wrong model should not cost the other parts' time
        multilingual = context.model(ModelSpec(config.crosslingual_model, config.model.device, config.model.dtype))
        if not multilingual.is_multilingual:
            raise WhisperLensError(f"--crosslingual-model {config.crosslingual_model} is English-only; "
                                   "the transfer matrix needs a multilingual model (e.g. base)")
    seconds, arrays = {}, {}
    pairs, available = minimal_pairs(corpus, config.pairs)
    summary = {"model": config.model.model, "layers": model.dims.n_audio_layer, "available_pairs": available,
               "seconds": seconds, "seed": SEED}
    folder = context.folder
    folder.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    matrix = layer_matrix_sharded(model, pairs, config, context)
    seconds["matrix"] = round(time.perf_counter() - start, 1)
    arrays.update({f"matrix.{name}": values for name, values in matrix.items()})
    summary["matrix"] = matrix_summary(matrix)
    summary["matrix"]["words"] = [[p.word_a, p.word_b] for p in pairs]
    draw_matrix(summary["matrix"], "matrix", folder, config.model.model)

    if config.position_pairs:
        start = time.perf_counter()
        chosen, _ = minimal_pairs(corpus, config.position_pairs)
        positions = restricted(model, chosen, config.seed, config.batch_size, context.progress)
        seconds["positions"] = round(time.perf_counter() - start, 1)
        arrays.update({f"positions.{name}": values for name, values in positions.items()})
        valid = distinguishes(positions)
        summary["positions"] = {"pairs": len(chosen), "distinguished": int(valid.sum()),
                                "regions": restricted_summary(positions, valid),
                                "by_contrast": group_summary(positions, valid, [p.group for p in chosen]),
                                "by_position": group_summary(positions, valid, [p.position for p in chosen])}
        restricted_figure(summary["positions"]["regions"], folder, config.model.model)

    if config.window_pairs:
        start = time.perf_counter()
        chosen, _ = minimal_pairs(corpus, config.window_pairs)
        offsets = window_offsets(config.window, WINDOW_BEFORE_MS // 20, WINDOW_AFTER_MS // 20)
        sliding = windows(model, chosen, config.window, offsets, config.batch_size, context.progress)
        seconds["windows"] = round(time.perf_counter() - start, 1)
        arrays.update({f"windows.{name}": values for name, values in sliding.items()})
        valid = distinguishes(sliding)
        grid = sliding["normalised"][valid].mean(0) if valid.any() else np.full(sliding["normalised"].shape[1:], np.nan)
        labels = [f"{20 * o:+d}" for o in offsets]
        summary["windows"] = {"pairs": len(chosen), "distinguished": int(valid.sum()), "window_ms": 20 * config.window,
                              "offsets_ms": labels, "normalised": [[_number(v) for v in row] for row in grid]}
        LabelledArray(grid, ("layer", "window start (ms from onset)"), {"layer": list(range(len(grid))),
                                                                        "window start (ms from onset)": labels}) \
            .heatmap(folder, "windows.png", title=f"{config.model.model}: A's resid_post over {20 * config.window} ms "
                                                  "of B, normalised logit difference", vmin=-1, vmax=1)

    if config.crosslingual_pairs:
        start = time.perf_counter()
        chosen, alike = translation_pairs(corpus, config.crosslingual_pairs)
        if not chosen:
            raise WhisperLensError("the corpus selection has no English/Spanish pair (sets: en_es_pairs)")
        crossing = transfer(multilingual, chosen, config.batch_size, context.progress)
        seconds["crosslingual"] = round(time.perf_counter() - start, 1)
        arrays.update({f"crosslingual.{name}": values for name, values in crossing.items()})
        summary["crosslingual"] = {"model": config.crosslingual_model, "layers": multilingual.dims.n_audio_layer,
                                   "left_out_alike": alike, **transfer_summary(crossing, chosen),
                                   "words": [[p.word_a, p.word_b, p.group] for p in chosen]}
        draw_matrix(summary["crosslingual"]["all"], "crosslingual", folder, config.crosslingual_model)
    return PatchingResult(config, summary, arrays, folder)


def draw_matrix(summary: dict, name: str, folder, model: str) -> None:
    n = len(summary["binary"])
    coords = {"source layer": list(range(n)), "target layer": list(range(n))}
    for metric, title, limits in (("binary", "share of transcripts with A's word", (0, 1)),
                                  ("normalised", "normalised logit difference", (-1, 1))):
        values = np.array([[np.nan if v is None else v for v in row] for row in summary[metric]], dtype=float)
        LabelledArray(values, ("source layer", "target layer"), dict(coords)).heatmap(
            folder, f"{name}_{metric}.png", title=f"{model}: {title}", vmin=limits[0], vmax=limits[1])


def _number(value) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def _cells(matrix: list[list]) -> list[list]:
    return [[f"source {i}", *row] for i, row in enumerate(matrix)]


class PatchingResult(Result):
    study = "patching"
    config_type = PatchingConfig

    def views(self):
        s = self.summary
        model, m = s["model"], s["matrix"]
        blocks = [Text(
            f"{model}, {m['pairs']} of the corpus's {s['available_pairs']} minimal pairs (A = the pair's first word, "
            f"B = its second, one voice; A shifted in time to start its word where B's starts). A's encoder output at "
            f"source layer s replaces all of B's positions at target layer t. Binary metric (the seed's): A's word is in "
            f"the greedy transcript. Normalised logit difference: logit(A) - logit(B) at the first token where 'A' and "
            f"'B' differ, as (patched - B's run) / (A's run - B's run), over the {m['distinguished']} pairs where the model's "
            f"own runs prefer A's token on A and B's on B. Time (s): "
            + ", ".join(f"{k} {s['seconds'][k]}" for k in PARTS if k in s["seconds"]) + ".\n\n"
            f"The diagonal is not a finding. Writing every position of layer t with A's layer-t states makes the rest "
            f"of the run A's own run, bit for bit: B no longer takes part. So the binary diagonal is the share of A "
            f"clips transcribed with A's word ({m['clean_a_rate']} here, unpatched), and the normalised diagonal is 1 "
            f"by construction. An off-diagonal cell runs A's layer-s states through layers t+1 onward: it measures how "
            f"well the later layers read states from the wrong depth, not anything about B.")]
        header = ["", *(f"target {t}" for t in range(len(m["binary"])))]
        for metric, title in (("binary", "share of transcripts with A's word"),
                              ("normalised", "normalised logit difference")):
            blocks.append(Figure(f"matrix_{metric}.png", f"{model}: source layer x target layer override, {title}",
                                 numbers=Table(header, _cells(m[metric]))))
        seed = SEED["override"]
        blocks.append(Table(["", "pairs", "diagonal", "off-diagonal", "A unpatched", "B unpatched (A's word)"], [
            ["seed 004 (tiny, gTTS; binary)", seed["pairs"], seed["diagonal"], seed["off_diagonal"], "", ""],
            [f"{model}, binary", m["pairs"], m["binary_diagonal"], m["binary_off_diagonal"], m["clean_a_rate"],
             m["corrupt_a_rate"]],
            [f"{model}, normalised logit difference", m["distinguished"], m["normalised_diagonal"],
             m["normalised_off_diagonal"], 1.0, 0.0]],
            caption="The seed's numbers beside ours (seed: published, not re-measured)."))
        blocks += self._position_views(model)
        blocks += self._crosslingual_views()
        return blocks

    def _position_views(self, model: str) -> list:
        s, blocks = self.summary, []
        if "positions" in s:
            p = s["positions"]
            rows = []
            for source in SOURCES:
                for region in REGIONS:
                    values = p["regions"][source][region]
                    rows.append([f"{source} → B", region, *values["normalised"], *values["became_a"]])
            n = len(rows[0]) // 2 - 1
            header = ["source", "positions", *(f"norm. LD L{i}" for i in range(n)), *(f"A's word L{i}" for i in range(n))]
            blocks.append(Figure("positions.png", f"{model}: A's resid_post at the same layer written only over the "
                                 "word's frames, only outside them, or everywhere; from A, from another pair's A "
                                 "(random) and from B itself (null)", numbers=Table(header, rows),
                                 caption=f"{p['pairs']} pairs ({p['distinguished']} distinguished, which the normalised "
                                         "logit difference averages over). The word's frames are the positions under "
                                         "A's word or B's (aligned at onset); 'outside' is every other position of "
                                         "the 30 s window, padding included."))
            for key, title in (("by_contrast", "contrast type"), ("by_position", "where the contrast lies")):
                group_rows = [[g["group"], g["pairs"], g["distinguished"], *g["normalised"], *g["became_a"]]
                              for g in p[key]]
                blocks.append(Table(["group", "pairs", "distinguished", *(f"norm. LD L{i}" for i in range(n)),
                                     *(f"A's word L{i}" for i in range(n))], group_rows,
                                    caption=f"Word-frame patches from A, by {title}."))
        if "windows" in s:
            w = s["windows"]
            blocks.append(Figure("windows.png", f"{model}: A's resid_post over a {w['window_ms']} ms window of B, "
                                 "by layer and by where the window starts relative to the word's onset",
                                 numbers=Table(["layer", *w["offsets_ms"]],
                                               [[i, *row] for i, row in enumerate(w["normalised"])]),
                                 caption=f"Normalised logit difference over the {w['distinguished']} of {w['pairs']} "
                                         "pairs the model distinguishes. Small windows understate what the word's "
                                         "frames do together (Zhang & Nanda 2023 on sliding windows)."))
        return blocks

    def _crosslingual_views(self) -> list:
        s = self.summary
        if "crosslingual" not in s:
            return []
        c, seed = s["crosslingual"], SEED["transfer"]
        a = c["all"]
        header = ["", *(f"target {t}" for t in range(len(a["binary"])))]
        blocks = [Text(f"English into Spanish on {c['model']} ({c['layers']} encoder layers): {a['pairs']} translation "
                       f"pairs, A = the English word, B = the Spanish one. The binary metric decodes with language "
                       f"detection, as transcribe does; the logit difference is read after Spanish's start-of-transcript "
                       f"tokens. Left out: {len(c['left_out_alike'])} pairs spelt alike in both languages "
                       f"({', '.join(c['left_out_alike'])}), where 'the English word appears' is true of the Spanish "
                       f"clip itself. The seed used multilingual tiny (4 layers); base has {c['layers']}.")]
        for metric, title in (("binary", "share of transcripts with the English word"),
                              ("normalised", "normalised logit difference")):
            blocks.append(Figure(f"crosslingual_{metric}.png", f"{c['model']}: English -> Spanish transfer, {title}",
                                 numbers=Table(header, _cells(a[metric]))))
        rows = [["seed 004 (tiny, gTTS)", seed["pairs"], seed["rate"], seed["same_layer"], seed["cross_layer"], "", "", ""]]
        for group in ("all", "cognate", "non-cognate"):
            if group in c:
                g = c[group]
                rows.append([f"{c['model']}, {group}", g["pairs"], g["rate"], g["binary_diagonal"], g["binary_off_diagonal"],
                             g["clean_a_rate"], g["corrupt_a_rate"], g["normalised_off_diagonal"]])
        blocks.append(Table(["", "pairs", "overall rate", "same layer", "cross layer", "English unpatched",
                             "Spanish unpatched (English word)", "norm. LD off-diagonal"], rows,
                            caption="Transfer: share of patched transcripts with the English word."))
        return blocks


STUDY = Study("patching", "Activation patching: the override matrix, position-restricted patches and cross-lingual "
              "transfer", PatchingConfig, run, PatchingResult,
              description="Patch encoder states of word A into word B (and back), layer by layer and position by "
                          "position, with the seed's binary metric and the normalised logit difference; English into "
                          "Spanish on the multilingual model; `pair A.wav B.wav` for any two recordings.",
              add_commands=add_commands)
