"""Study configs: typed dataclasses that are at once the study's parameters, its JSON record and
its command line (the flags are derived from the fields; see cli.py), so defaults live in one place.

Fields hold JSON-friendly values only (str, int, float, bool, None, tuples, lists, dicts and
nested config dataclasses), so `config_to_dict` / `config_from_dict` are exact inverses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import simple_parsing

from ..corpus.selection import CorpusSelection
from ..errors import WhisperLensError

DTYPE_NAMES = ("float32", "bfloat16", "float16")


def parse_json_list(text: str) -> list:
    """`--interventions` takes a JSON list, or @file.json."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as error:
            raise WhisperLensError(f"{text[1:]}: cannot read interventions ({error.strerror})") from None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise WhisperLensError(f"--interventions must be a JSON list of intervention specs ({error})") from None
    if not isinstance(value, list):
        raise WhisperLensError("--interventions must be a JSON list, e.g. '[{\"kind\": \"skip_layers\", \"layers\": [3]}]'")
    return value


@dataclass
class ModelSpec:
    """Which model, on which device, in which precision."""

    model: str = "tiny.en"  # bundled name (tiny.en, base) or a path to a Whisper checkpoint
    device: str = "cpu"  # torch device; not part of a result's fingerprint
    dtype: str = simple_parsing.field(default="float32", choices=DTYPE_NAMES)  # weights and activations

    def key(self) -> str:
        """What identifies the weights and precision (the device does not change a result's meaning)."""
        path = Path(self.model).expanduser()
        if path.exists():  # a checkpoint on disk: its identity is its content, approximated by size and time
            stat = path.stat()
            return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.dtype}"
        return f"{self.model}|{self.dtype}"


@dataclass
class StudyConfig:
    """What every study takes: a seed. Most take a model too (ModelStudyConfig)."""

    seed: int = 0  # every random choice of the study follows it

    def validate(self) -> None:
        """Raise WhisperLensError for a bad value; studies extend it and call super()."""


@dataclass
class ModelStudyConfig(StudyConfig):
    """A study of a model, with interventions applied to it while the study runs."""

    model: ModelSpec = field(default_factory=ModelSpec)
    # intervention specs (JSON list, or @file.json) applied to the model for the whole study
    interventions: list = simple_parsing.field(default_factory=list, type=parse_json_list, nargs="?")

    def validate(self) -> None:
        super().validate()
        from ..devices import check_device, dtype_named

        check_device(self.model.device)
        dtype_named(self.model.dtype)
        if self.interventions:
            from ..interventions import interventions_from_json

            interventions_from_json(self.interventions)  # fails on a bad spec before any work


@dataclass
class CorpusStudyConfig(ModelStudyConfig):
    """A study of a model over a selection of the corpus."""

    corpus: CorpusSelection = field(default_factory=CorpusSelection)


def config_to_dict(config) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_from_dict(cls: type, data: dict):
    """Rebuild a config dataclass from `config_to_dict`'s output (tuples and nested configs included)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _coerce(hints[f.name], data[f.name])
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise WhisperLensError(f"{cls.__name__}: unknown config field(s) {', '.join(sorted(unknown))}")
    return cls(**values)


def _coerce(annotation, value):
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if value is None else _coerce(options[0], value)
    if dataclasses.is_dataclass(annotation):
        return config_from_dict(annotation, value)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(annotation)
        item = args[0] if args else typing.Any
        return tuple(_coerce(item, v) for v in value)
    return value


def fingerprint(study: str, config, corpus_hash: str | None, format_version: int) -> str:
    """Everything a saved result depends on: the study, its config (less the device and executor), the corpus's
    content hash, the model's identity and the package version."""
    from .. import __version__

    record = config_to_dict(config)
    record.get("model", {}).pop("device", None)
    record.pop("executor", None)  # where the work ran (this process or a Ray cluster) does not change the result
    model_key = config.model.key() if hasattr(config, "model") else None
    payload = [study, record, corpus_hash, model_key, __version__, format_version]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
