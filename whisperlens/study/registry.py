"""The list of studies, and what a study is: a name, a config type, a run function and a result type."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

# One module per study, each defining STUDY; adding a study means adding its module here.
STUDY_MODULES = [
    "whisperlens.studies.example",
    "whisperlens.studies.wer",
    "whisperlens.studies.align",
    "whisperlens.features.study",
    "whisperlens.features.agreement",
]


@dataclass(frozen=True)
class Study:
    name: str  # the CLI command and the result folder's name
    title: str  # the report section's heading
    config: type  # a StudyConfig dataclass; its fields are the CLI flags
    run: Callable  # run(config, context) -> Result
    result: type  # the Result subclass, for load()
    description: str = ""
    add_commands: Callable | None = None  # add_commands(subparsers): actions beyond run and show


def all_studies() -> dict[str, Study]:
    studies = {}
    for module_name in STUDY_MODULES:
        study = importlib.import_module(module_name).STUDY
        studies[study.name] = study
    return studies
