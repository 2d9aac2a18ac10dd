"""The study layer: config -> run(config, context) -> Result -> view blocks -> page and report.

See docs/architecture.md for how the pieces fit and how to add a study.
"""

from .blocks import Audio, Block, Code, Figure, Link, Table, Text, blocks_as_text
from .config import CorpusStudyConfig, ModelSpec, ModelStudyConfig, StudyConfig, config_from_dict, config_to_dict
from .context import Checkpoint, StudyContext
from .figures import new_figure, save_figure
from .registry import Study
from .result import Result

__all__ = [
    "Audio", "Block", "Code", "Figure", "Link", "Table", "Text", "blocks_as_text",
    "CorpusStudyConfig", "ModelSpec", "ModelStudyConfig", "StudyConfig", "config_from_dict", "config_to_dict",
    "Checkpoint", "StudyContext", "new_figure", "save_figure", "Study", "Result",
]
