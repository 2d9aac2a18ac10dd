"""A small run directory for the dashboard's tests and screenshots, made by the real studies:
the example study (a figure and audio) and the features study over a small corpus (a store with
encoder and decoder sites, neurons and random directions, inside the run directory), on tiny.en."""

from __future__ import annotations

from pathlib import Path

from whisperlens.corpus.selection import CorpusSelection
from whisperlens.features.study import STUDY as FEATURES
from whisperlens.features.study import FeaturesConfig
from whisperlens.studies.example import STUDY as EXAMPLE
from whisperlens.studies.example import ExampleConfig
from whisperlens.study import StudyContext
from whisperlens.study.runner import run_pipeline

from .conftest import HOOKS

_built: dict[str, Path] = {}


def build_run(out: Path, corpus_root: str, progress: bool = False) -> Path:
    """runs/main as `whisperlens run` leaves it, in small; a second call reuses the results."""
    features = FeaturesConfig(corpus=CorpusSelection(path=corpus_root), store=str(out / "store"), hooks=HOOKS,
                              bases=("neurons", "random"), random_features=64, top_k=6, batch_size=7, html=False)
    run_pipeline([(EXAMPLE, ExampleConfig()), (FEATURES, features)], out, "whisperlens: tiny.en", StudyContext(out, progress))
    return out


def run_directory(tmp_path_factory, corpus) -> Path:
    """The tests' run directory: built once per test session, over the 30-clip test corpus."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _built:
        _built[key] = build_run(tmp_path_factory.mktemp("dashboard-run") / "main", str(corpus.root))
    return _built[key]


def studies() -> list:
    """Every study the command line knows, as `whisperlens serve` passes them to the app."""
    from whisperlens.cli import STUDY_MODULES
    from whisperlens.commands.serve import load_studies

    return load_studies(STUDY_MODULES)
