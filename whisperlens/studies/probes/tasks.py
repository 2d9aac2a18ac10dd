"""What the probes are asked to predict, from the corpus's own labels, and what each task's
held-out unit is (a whole voice where the task allows it, else a whole utterance).

Clip tasks have one example per clip (its activations mean-pooled over its valid positions);
frame tasks have one example per encoder position, drawn from a bounded per-label sample of
frames (collect.FrameSample) whose labels `frame_label` below gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...errors import WhisperLensError

SILENCE = "SIL"  # a frame of a speech clip with no phone under it
NON_SPEECH = "non-speech"
SPEECH = "speech"
# The sets whose frames go into the frame sample: English speech has the phone alignments the
# frame tasks need (multilingual clips carry only nearest-ARPAbet phones), non-speech is its foil.
FRAME_SETS = ("english", "nonspeech")
LANGUAGE_ENGINE = "espeak"  # the engine every language of the corpus is spoken by


@dataclass(frozen=True)
class Task:
    name: str
    unit: str  # "clip" (mean-pooled activations) or "frame" (one encoder position)
    holds_out: str  # "voice" or "utterance": what a test fold holds out as a whole
    why: str  # why that split
    needs: str  # what the corpus must hold, for the message when it does not
    clip_label: Callable | None = None  # clip tasks: clip -> label, or None when the clip is not in the task
    frame_label: Callable | None = None  # frame tasks: the frame's sample label -> label, or None
    balanced: bool = False  # subsample to equal classes (frame tasks whose sample is skewed by design)

    def group(self, clip) -> str:
        """The held-out unit a clip belongs to."""
        return voice_of(clip) if self.holds_out == "voice" else utterance_of(clip)


def voice_of(clip) -> str:
    # A non-speech clip's "voice" is its kind (white noise, tones, ...): holding it out asks the
    # probe to call a kind of sound it never saw non-speech.
    return f"{clip.engine}/{clip.voice}"


def utterance_of(clip) -> str:
    return clip.text.strip().lower() or clip.id


def frame_sample_label(clip, phone: str | None) -> str | None:
    """The label a frame is sampled under: its phone, SIL between or around the words of an
    English clip, non-speech for every frame of a non-speech clip; None for other clips."""
    if clip.set == "nonspeech":
        return NON_SPEECH
    if clip.set == "english":
        return phone or SILENCE
    return None


def _language(clip) -> str | None:
    # Only espeak-ng speaks every language of the corpus: keeping English to its voices means the
    # engine cannot tell the languages apart.
    if clip.set in ("english", "multilingual") and clip.engine == LANGUAGE_ENGINE and clip.language:
        return clip.language
    return None


def _speech(clip) -> str | None:
    if clip.set == "nonspeech":
        return NON_SPEECH
    return SPEECH if clip.set in ("english", "multilingual") else None


def _english(attribute: str) -> Callable:
    def label(clip) -> str | None:
        if clip.set != "english":
            return None
        return voice_of(clip) if attribute == "voice" else clip.engine

    return label


def _phone(label: str) -> str | None:
    return None if label == NON_SPEECH else label


def _frame_speech(label: str) -> str:
    return NON_SPEECH if label in (SILENCE, NON_SPEECH) else SPEECH


HOLD_OUT_VOICE = "a voice is held out whole, so a probe cannot pass by recognising the speaker"
TASKS = {task.name: task for task in [
    Task("language", "clip", "utterance",
         "es, fr and de each have one voice, so no voice can be held out; English is limited to espeak-ng's "
         "two English voices, so every language comes from the same engine",
         "espeak-ng clips in two or more languages (sets english and multilingual)", clip_label=_language),
    Task("speech", "clip", "voice", HOLD_OUT_VOICE + "; a non-speech kind (noise, tones, clicks) likewise",
         "speech clips and non-speech clips (sets english or multilingual, and nonspeech)", clip_label=_speech),
    Task("voice", "clip", "utterance", "the voice is the label, so only utterances can be held out",
         "English clips from two or more voices (set english)", clip_label=_english("voice")),
    Task("engine", "clip", "voice", "the engine is the label and each engine has several voices: "
         "held-out voices ask whether the engine shows through a voice the probe never heard",
         "English clips from two or more engines (set english)", clip_label=_english("engine")),
    Task("speech_frames", "frame", "voice", HOLD_OUT_VOICE + "; a non-speech kind likewise",
         "English clips with phone alignments and non-speech clips (sets english and nonspeech)",
         frame_label=_frame_speech, balanced=True),
    Task("phone", "frame", "voice", HOLD_OUT_VOICE,
         "English clips with phone alignments (set english)", frame_label=_phone),
]}
TASK_NAMES = tuple(TASKS)


@dataclass
class Examples:
    """A task's examples: rows into the collected activations (pooled clips or sampled frames),
    with their labels and held-out units."""

    task: Task
    rows: np.ndarray  # int64 rows of Collected.pooled (clip tasks) or Collected.frames (frame tasks)
    labels: np.ndarray  # str
    groups: np.ndarray  # str: voice or utterance

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()))


def clip_examples(task: Task, clips: list, folds: int) -> Examples:
    """`clips` in stream order; rows index them."""
    chosen = [(row, task.clip_label(clip), task.group(clip)) for row, clip in enumerate(clips)]
    return _checked(_examples(task, chosen), folds)


def frame_examples(task: Task, sample_labels: np.ndarray, sample_clips: list, folds: int, seed: int) -> Examples:
    """sample_labels: each sampled frame's label; sample_clips: each sampled frame's clip."""
    chosen = [(row, task.frame_label(label), task.group(clip))
              for row, (label, clip) in enumerate(zip(sample_labels.tolist(), sample_clips, strict=True))]
    examples = _examples(task, chosen)
    if task.balanced and len(examples.rows):
        examples = balanced(examples, np.random.default_rng(seed))
    return _checked(examples, folds)


def _examples(task: Task, chosen: list[tuple[int, str | None, str]]) -> Examples:
    kept = [(row, label, group) for row, label, group in chosen if label is not None]
    rows, labels, groups = zip(*kept) if kept else ((), (), ())
    return Examples(task, np.asarray(rows, dtype=np.int64), np.asarray(labels, dtype=str), np.asarray(groups, dtype=str))


def balanced(examples: Examples, rng: np.random.Generator) -> Examples:
    """Every class cut to the size of the smallest, by a seeded draw; order kept."""
    classes, counts = np.unique(examples.labels, return_counts=True)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(examples.labels == label), counts.min(), replace=False)
                                   for label in classes]))
    return Examples(examples.task, examples.rows[keep], examples.labels[keep], examples.groups[keep])


def check_frame_task(task: Task, clips: list, folds: int) -> None:
    """Before any streaming: whether the frame sample of `clips` can give `task` two classes and
    `folds` held-out units (the sample has every label that occurs in enough frames)."""
    labels, groups = set(), set()
    for clip in clips:
        sample_labels = {frame_sample_label(clip, phone) for phone in [None, *(p for p, _, _ in clip.phones)]}
        task_labels = {task.frame_label(label) for label in sample_labels if label is not None} - {None}
        if task_labels:
            labels |= task_labels
            groups.add(task.group(clip))
    _check(task, labels, len(groups), folds)


def _checked(examples: Examples, folds: int) -> Examples:
    _check(examples.task, set(examples.classes), len(set(examples.groups.tolist())), folds)
    return examples


def _check(task: Task, classes: set[str], n_groups: int, folds: int) -> None:
    if len(classes) < 2:
        found = ", ".join(sorted(classes)) or "none"
        raise WhisperLensError(f"task {task.name!r} needs {task.needs}; the selection gives classes: {found} "
                               "(choose other --sets, or leave the task out of --tasks)")
    if n_groups < folds:
        raise WhisperLensError(f"task {task.name!r} holds out whole {task.holds_out}s, and the selection has only "
                               f"{n_groups} of them for {folds} folds (select more clips, or lower --folds)")
