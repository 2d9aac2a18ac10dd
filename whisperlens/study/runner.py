"""Running studies: one at a time (`whisperlens STUDY run`) or as a pipeline (the main job).

A study whose saved result has the same fingerprint is not run again; within a study, work
resumes from its checkpoints. The report is rewritten after each study, so it fills in as the
pipeline goes.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from .config import fingerprint
from .context import StudyContext
from .registry import Study
from .render import ReportSection, write_report, write_study_page
from .result import read_record


def study_fingerprint(study: Study, config, context: StudyContext) -> str:
    selection = getattr(config, "corpus", None)
    corpus_key = selection.key(context.corpus(selection)) if selection is not None else None
    return fingerprint(study.name, config, corpus_key, study.result.format_version)


def run_study(study: Study, config, folder: Path | str, context: StudyContext, force: bool = False):
    """(result, ran): the saved result if its fingerprint matches, else a fresh run, saved."""
    folder = Path(folder)
    config.validate()  # a bad value fails here, before anything is written
    expected = study_fingerprint(study, config, context)
    record = read_record(folder)
    if not force and record is not None and record.get("fingerprint") == expected \
            and record.get("format_version") == study.result.format_version:
        return study.result.load(folder), False
    study_context = context.for_study(folder, getattr(config, "interventions", None))
    created = not folder.exists()
    try:
        result = study.run(config, study_context)
    except BaseException:
        if created:
            _remove_if_empty(folder)  # a run that failed before writing anything leaves no folder behind
        raise
    finally:
        study_context.close()
    result.fingerprint = expected
    result.save(folder)
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # what an interrupted run would have resumed from
    write_study_page(result, study.title, command_line(study, config), study.description)
    return result, True


def _remove_if_empty(folder: Path) -> None:
    """Remove `folder` when it holds no files (empty folders only): checkpoints stay for a resume."""
    if folder.is_dir() and not any(path.is_file() for path in folder.rglob("*")):
        shutil.rmtree(folder)


def command_line(study: Study, config) -> str:
    """The command that reproduces `config`: `whisperlens STUDY run` plus every flag off its default."""
    return " ".join(["whisperlens", study.name, "run", *config_flags(config, type(config)())])


def config_flags(config, default) -> list[str]:
    flags = []
    for f in dataclasses.fields(config):
        value, default_value = getattr(config, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            flags += config_flags(value, default_value)
        elif value != default_value:
            flag = _flag_name(f)
            if isinstance(value, (list, dict)):
                import json
                import shlex

                flags += [flag, shlex.quote(json.dumps(value))]
            elif isinstance(value, tuple):
                flags += [flag, *map(str, value)]
            else:
                flags += [flag, str(value)]
    return flags


def _flag_name(f: dataclasses.Field) -> str:
    aliases = f.metadata.get("custom_args", {}).get("alias") if f.metadata else None
    if aliases:
        return aliases[0] if isinstance(aliases, (list, tuple)) else aliases
    return "--" + f.name.replace("_", "-")


def run_pipeline(plan: list[tuple[Study, object]], out: Path | str, title: str, context: StudyContext,
                 lead: list[ReportSection] = (), force: bool = False) -> list:
    """Run each (study, config) in order into out/STUDY, rewriting out/index.html after each."""
    out = Path(out)
    sections = list(lead) + [ReportSection(study.name, study.title, None) for study, _ in plan]
    results = []
    for index, (study, config) in enumerate(plan, start=len(lead)):
        write_report(out / "index.html", title, sections)
        print(f"== {study.title}")
        started = time.perf_counter()
        result, ran = run_study(study, config, out / study.name, context, force)
        seconds = time.perf_counter() - started
        outcome = f"done in {seconds:.0f} s" if ran else "up to date (same fingerprint), skipped"
        print(f"   {study.name}: {outcome}: {result.folder}")
        sections[index] = ReportSection(study.name, study.title, result.views(), result.folder, command_line(study, config))
        results.append(result)
    write_report(out / "index.html", title, sections)
    return results
