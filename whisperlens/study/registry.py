"""What a study is: a name, a config type, a run function and a result type. The list of studies
is the CLI's (cli.py), above every study, so that this layer never names one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Study:
    name: str  # the CLI command and the result folder's name
    title: str  # the report section's heading
    config: type  # a StudyConfig dataclass; its fields are the CLI flags
    run: Callable  # run(config, context) -> Result
    result: type  # the Result subclass, for load()
    description: str = ""
    add_commands: Callable | None = None  # add_commands(subparsers): actions beyond run and show
    run_aliases: tuple[str, ...] = ()  # other names of the run action (features: build)
