"""What a running study is handed: models and corpora (loaded once per process and shared across
the studies of a pipeline), progress bars, checkpoints, and the folder its files go to."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..storage import atomic_path


class StudyContext:
    def __init__(self, folder: Path | str, progress: bool = True, *, _shared: dict | None = None):
        self.folder = Path(folder)  # the result's folder: figures and audio go here
        self.show_progress = progress
        self._shared = _shared if _shared is not None else {"models": {}, "corpora": {}}
        self._interventions: list = []
        self._intervened: set[int] = set()
        self._stack = contextlib.ExitStack()

    def for_study(self, folder: Path | str, interventions: list | None = None) -> StudyContext:
        """A context for one study run, sharing this one's loaded models and corpora."""
        context = StudyContext(folder, self.show_progress, _shared=self._shared)
        if interventions:
            from ..interventions import interventions_from_json

            context._interventions = interventions_from_json(interventions)
        return context

    def model(self, spec):
        """The model `spec` names, loaded once. Within a study run, the config's interventions are
        applied to it from the first call until the run ends."""
        from ..devices import DTYPES, check_device
        from ..models.loading import load_model

        key = (spec.model, spec.device, spec.dtype)
        models = self._shared["models"]
        if key not in models:
            check_device(spec.device)
            models[key] = load_model(spec.model, device=spec.device, dtype=DTYPES[spec.dtype])
        model = models[key]
        if self._interventions and id(model) not in self._intervened:
            self._stack.enter_context(model.intervene(*self._interventions))
            self._intervened.add(id(model))
        return model

    def corpus(self, selection):
        """The corpus a CorpusSelection names, opened once per selection."""
        corpora = self._shared["corpora"]
        if selection not in corpora:
            corpora[selection] = selection.open()
        return corpora[selection]

    def progress(self, iterable=None, **options):
        from tqdm import tqdm

        return tqdm(iterable, disable=not self.show_progress, **options)

    def checkpoint(self, name: str, fingerprint: str) -> Checkpoint:
        return Checkpoint(self.checkpoint_path(name), fingerprint)

    def checkpoint_path(self, name: str) -> Path:
        """Where the checkpoint `name` of this run lives; the study runner clears them all once the result is saved."""
        return self.folder / "checkpoints" / f"{name}.npz"

    def close(self) -> None:
        """End the run: interventions come off the shared models."""
        self._stack.close()
        self._intervened.clear()


class Checkpoint:
    """Arrays saved atomically as a study goes; `load()` gives them back only if they were saved
    under the same fingerprint (same config, corpus and model), else None."""

    def __init__(self, path: Path, fingerprint: str):
        self.path, self.fingerprint = Path(path), fingerprint

    def load(self) -> dict[str, np.ndarray] | None:
        if not self.path.exists():
            return None
        with np.load(self.path) as data:
            if str(data["__fingerprint__"]) != self.fingerprint:
                return None
            return {key: data[key] for key in data.files if key != "__fingerprint__"}

    def save(self, arrays: dict[str, np.ndarray]) -> None:
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, __fingerprint__=np.array(self.fingerprint), **arrays)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
