"""Linear probes on every encoder layer of Whisper: what each layer encodes linearly of a clip's
language, speech against non-speech, the voice and the engine, and of each frame's phone, against
control tasks, a random-weights Whisper and the majority class.

    whisperlens probes run                                  # tiny.en, 40 clips per voice
    whisperlens probes run --model base --out runs/probes-base
    whisperlens probes run --tasks speech phone --frames-per-class 100 --random-model false
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ...corpus.selection import CorpusSelection
from ...distributed import ExecutorSpec, ModelRequest
from ...errors import WhisperLensError
from ...study import CorpusStudyConfig, Result, Study
from . import report
from .collect import collect
from .controls import control_labels, random_whisper
from .fit import confusion, majority_score, probe_score
from .language_id import detect_languages
from .splits import group_folds, shared_groups
from .tasks import FRAME_SETS, TASK_NAMES, TASKS, check_frame_task, clip_examples, frame_examples

DEFAULT_SETS = ("english", "multilingual", "nonspeech")


@dataclass
class ProbesConfig(CorpusStudyConfig):
    """Linear probes per encoder layer, with control tasks, a random-weights model and a majority baseline."""

    # 40 clips per voice: 360 English (9 voices), 120 es/fr/de, 240 non-speech (8 kinds of 30)
    corpus: CorpusSelection = field(default_factory=lambda: CorpusSelection(sets=DEFAULT_SETS, per_voice=40))
    tasks: tuple[str, ...] = TASK_NAMES  # tasks to probe, from: language speech voice engine speech_frames phone
    frames_per_class: int = 200  # frames sampled per frame label (each phone, SIL, non-speech)
    folds: int = 3  # cross-validation folds, each holding out whole voices (or utterances)
    control_clusters_per_class: int = 8  # k-means clusters of the log-mel per class, each given a random label (control task)
    regularization: float = 1.0  # C of the logistic regression (inverse L2 strength)
    random_model: bool = True  # also probe a Whisper of the same size with random weights
    batch_size: int = 32  # clips per forward pass
    # clips of the language task (evenly over its languages) on which a multilingual model's own
    # detect_language runs; it needs 30 s windows, about 1 s a clip for base on 2 cores
    detect_language_clips: int = 40
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)  # --executor local|ray, --ray-address, ...

    def validate(self) -> None:
        super().validate()
        unknown = [name for name in self.tasks if name not in TASKS]
        if unknown or not self.tasks:
            problem = f"unknown task {unknown[0]!r}" if unknown else "name at least one task"
            raise WhisperLensError(f"--tasks: {problem} (known: {' '.join(TASK_NAMES)})")
        least = {"--frames-per-class": (self.frames_per_class, 2), "--folds": (self.folds, 2),
                 "--control-clusters-per-class": (self.control_clusters_per_class, 1),
                 "--batch-size": (self.batch_size, 1), "--detect-language-clips": (self.detect_language_clips, 1)}
        for flag, (value, minimum) in least.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise WhisperLensError(f"{flag} must be a whole number of at least {minimum}, got {value!r}")
        if not self.regularization > 0:
            raise WhisperLensError(f"--regularization must be positive, got {self.regularization!r}")
        self.executor.validate()


class ProbesResult(Result):
    study = "probes"
    config_type = ProbesConfig

    def views(self):
        return report.views(self.summary, self.config, self.arrays)


def run(config: ProbesConfig, context) -> ProbesResult:
    model = context.model(config.model)
    corpus = context.corpus(config.corpus)
    clips = list(corpus)
    tasks = [TASKS[name] for name in config.tasks]
    indices, frame_clips = _stream_order(clips, tasks)
    stream_clips = [clips[i] for i in indices]
    examples = {task.name: clip_examples(task, stream_clips, config.folds) for task in tasks if task.unit == "clip"}
    frame_tasks = [task for task in tasks if task.unit == "frame"]
    for task in frame_tasks:  # missing labels fail here, before any streaming
        check_frame_task(task, [clips[i] for i in sorted(frame_clips)], config.folds)

    models = {"trained": model}
    if config.random_model:
        models["random"] = random_whisper(model, config.seed)
    collected = {kind: _collect(kind, each, corpus, indices, frame_clips, config, context) for kind, each in models.items()}
    reference = collected["trained"]
    if "random" in collected:  # the same seeded keys over the same clips: the same frames for both models
        assert np.array_equal(collected["random"].frames.get("key"), reference.frames.get("key"))
    frame_clip_list = [clips[i] for i in reference.frames.get("clip", np.zeros(0, np.int64)).tolist()]
    for task in frame_tasks:
        examples[task.name] = frame_examples(task, reference.frames["label"], frame_clip_list, config.folds, config.seed)

    results = [_probe_task(examples[task.name], collected, config, context) for task in tasks]
    if model.is_multilingual and "language" in examples:  # an English-only model has no language tokens
        entry, task_arrays = next((entry, arrays) for entry, arrays in results if entry["name"] == "language")
        entry["whisper_detect_language"] = _whisper_language_id(model, examples["language"], task_arrays, stream_clips,
                                                                config, context)
    summary = {"model": config.model.model, "sites": reference.sites, "clips": len(indices),
               "positions_per_clip": reference.positions, "padded_clips": reference.padded_clips,
               "frames_sampled": len(reference.frames.get("key", ())),
               "models": list(models), "tasks": [entry for entry, _ in results]}
    arrays = {f"{entry['name']}/{name}": value for entry, task_arrays in results for name, value in task_arrays.items()}
    folder = context.folder
    folder.mkdir(parents=True, exist_ok=True)
    report.save_figures(summary, arrays, folder)
    return ProbesResult(config, summary, arrays, folder)


def _collect(kind: str, model, corpus, indices: list[int], frame_clips: set[int], config: ProbesConfig, context):
    """One model's pass over the clips: here, or in shards on Ray (the same result)."""
    progress = context.show_progress and f"probes: {kind} {config.model.model}"
    if not config.executor.is_ray:
        return collect(model, corpus, indices, frame_clips, config.frames_per_class, config.seed, config.batch_size,
                       progress=progress)
    from .sharded import collect_sharded

    spec = config.model
    trained = kind == "trained"
    request = ModelRequest(spec.model, spec.dtype, spec.device, json.dumps(config.interventions if trained else []),
                           None if trained else config.seed)
    return collect_sharded(corpus, config.corpus, request, indices, frame_clips, config.frames_per_class, config.seed,
                           config.batch_size, config.executor, progress)


def _stream_order(clips: list, tasks: list) -> tuple[list[int], set[int]]:
    """The clips to stream (those some task uses), in stream order, and those to sample frames from."""
    frame_clips = {i for i, clip in enumerate(clips) if clip.set in FRAME_SETS} \
        if any(task.unit == "frame" for task in tasks) else set()
    used = [i for i, clip in enumerate(clips)
            if i in frame_clips or any(task.clip_label(clip) is not None for task in tasks if task.unit == "clip")]
    # The padding leak: in short mode a batch is cut to its longest clip, and a shorter clip's
    # frames attend to the padding after it. Ordered by length, batches hold clips of one length
    # wherever the corpus allows (the summary counts the clips that were padded anyway).
    return sorted(used, key=lambda i: clips[i].duration), frame_clips


def _whisper_language_id(model, examples, task_arrays: dict, stream_clips: list, config: ProbesConfig, context) -> dict:
    """Whisper's detect_language on a seeded, per-language subset of the language task's clips,
    with the probe's held-out accuracy on the same clips."""
    chosen = _evenly_per_class(examples.labels, config.detect_language_clips, config.seed)
    language_clips = [stream_clips[row] for row in examples.rows[chosen].tolist()]
    detected = detect_languages(model, language_clips, examples.classes, context.progress)
    detected["probe_accuracy_same_clips"] = _rounded(task_arrays["best_correct"][chosen].mean())
    return detected


def _probe_task(examples, collected: dict, config: ProbesConfig, context) -> tuple[dict, dict]:
    """Every site of every model on one task: a probe on the task and one on its control task."""
    task, labels = examples.task, examples.labels
    folds = group_folds(labels, examples.groups, config.folds, config.seed)
    assert not shared_groups(examples.groups, folds)
    reference = collected["trained"]
    acoustics = reference.pooled_mel[examples.rows] if task.unit == "clip" else reference.frames["mel"][examples.rows]
    control = control_labels(acoustics, labels, config.control_clusters_per_class * len(examples.classes), config.seed)
    majority = majority_score(labels, folds)
    entry = {"name": task.name, "unit": task.unit, "holds_out": task.holds_out, "why": task.why,
             "classes": examples.classes, "examples": len(labels), "groups": len(set(examples.groups.tolist())),
             "majority": _rounded(majority.accuracy), "control_majority": _rounded(majority_score(control, folds).accuracy)}
    scores = {}
    probes = [(kind, site) for kind in collected for site in reference.sites]
    for kind, site in context.progress(probes, desc=f"probes: {task.name}", unit="probe", leave=False):
        activations = collected[kind]
        features = (activations.pooled[site] if task.unit == "clip" else activations.frames[f"site:{site}"])[examples.rows]
        scores[kind, site] = (probe_score(features, labels, folds, config.regularization),
                              probe_score(features, control, folds, config.regularization))
    entry["unconverged_fits"] = sum(real.unconverged + controlled.unconverged for real, controlled in scores.values())
    arrays = {}
    for kind in collected:
        real, controlled = zip(*(scores[kind, site] for site in reference.sites))
        accuracy = np.array([score.accuracy for score in real])
        control_accuracy = np.array([score.accuracy for score in controlled])
        entry[kind] = {"accuracy": _rounded(accuracy), "fold_std": _rounded([score.fold_std for score in real]),
                       "control": _rounded(control_accuracy), "selectivity": _rounded(accuracy - control_accuracy)}
        arrays[f"{kind}_accuracy"] = accuracy.astype(np.float32)
        arrays[f"{kind}_control"] = control_accuracy.astype(np.float32)
        arrays[f"{kind}_recall"] = np.stack([np.diag(confusion(labels, score.predictions, examples.classes))
                                             for score in real])  # (sites, classes)
    best_site = reference.sites[int(np.argmax(arrays["trained_accuracy"]))]
    entry["best_site"] = best_site
    best_predictions = scores["trained", best_site][0].predictions
    arrays["confusion"] = confusion(labels, best_predictions, examples.classes)
    arrays["best_correct"] = (best_predictions == labels).astype(np.uint8)  # per example, at the best site
    return entry, arrays


def _evenly_per_class(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """About count / classes examples of each class (all of a smaller class), drawn by a seeded
    generator; sorted."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    share = max(1, count // len(classes))
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == label))[:share] for label in classes]))


def _rounded(values):
    """Four decimals: the summary is for reading; the arrays keep full precision."""
    if np.ndim(values) == 0:
        return round(float(values), 4)
    return [round(float(value), 4) for value in values]


STUDY = Study("probes", "Linear probes per encoder layer", ProbesConfig, run, ProbesResult,
              description="What each encoder layer encodes linearly of language, speech, voice, engine and phones, "
                          "against control tasks, a random-weights Whisper and the majority class.")
