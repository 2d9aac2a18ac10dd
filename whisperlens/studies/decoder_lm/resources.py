"""The word resources the study measures against, all read offline from installed packages:

- pronunciations: CMUdict, as pocketsphinx's PyPI wheel ships it (`en-us/cmudict-en-us.dict`);
- WordNet 3.0: Debian's `wordnet-base` (/usr/share/wordnet), read with nltk's WordNet reader;
- reference English text: Debian's `fortunes` and `fortunes-min` (/usr/share/games/fortunes:
  quotations, jokes and sayings; the study reports how many fortunes and words).

`bash scripts/setup.sh` installs the Debian packages; a missing one is a one-line error.
"""

from __future__ import annotations

import functools
import io
import re
import warnings
from pathlib import Path

from ...errors import WhisperLensError

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")

# WordNet's 45 lexicographer files by number, as lexnames(5WN) lists them. Debian's wordnet-base
# ships the database without the `lexnames` file nltk's reader expects, so the reader is given this.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object noun.person "
    "noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition verb.consumption "
    "verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative "
    "verb.weather adj.ppl"
).split()


@functools.cache
def pronunciations() -> dict[str, tuple[tuple[str, ...], ...]]:
    """Lowercase word -> its CMUdict pronunciations, each a tuple of ARPAbet phones without stress."""
    from pocketsphinx import get_model_path

    found: dict[str, list[tuple[str, ...]]] = {}
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as handle:
        for line in handle:
            word, *phones = line.split()
            word = re.sub(r"\(\d+\)$", "", word)  # "read(2)": the second pronunciation of "read"
            found.setdefault(word, []).append(tuple(phone.rstrip("012") for phone in phones))
    return {word: tuple(options) for word, options in found.items()}


def _wordnet_reader_class():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class DebianWordNet(WordNetCorpusReader):
        def open(self, file):
            if file == "lexnames":
                return io.StringIO("".join(f"{number:02d}\t{name}\t0\n" for number, name in enumerate(LEXNAMES)))
            return super().open(file)

        def map_wn(self, version="wordnet"):
            return None  # the mapping between WordNet versions serves multilingual data, not used here

    return DebianWordNet


@functools.cache
def wordnet():
    """nltk's WordNet reader on Debian's WordNet 3.0 database."""
    if not (WORDNET_DIR / "data.noun").exists():
        raise WhisperLensError(f"WordNet not found in {WORDNET_DIR}: install the Debian package wordnet-base "
                               "(bash scripts/setup.sh)")
    import nltk

    if str(WORDNET_DIR) not in nltk.data.path:
        nltk.data.path.append(str(WORDNET_DIR))  # nltk reads only from folders on its data path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": they are not used
        return _wordnet_reader_class()(str(WORDNET_DIR), None)


@functools.cache
def fortunes() -> tuple[str, ...]:
    """Every fortune of the installed English fortune databases, as plain text."""
    files = sorted(path for path in FORTUNES_DIR.glob("*") if path.suffix not in (".dat", ".u8") and path.is_file()) \
        if FORTUNES_DIR.is_dir() else []
    if not files:
        raise WhisperLensError(f"no fortune databases in {FORTUNES_DIR}: install the Debian package fortunes "
                               "(bash scripts/setup.sh)")
    texts = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r".\x08", "", text)  # overstrike (underline, bold) written as "x<backspace>x"
        texts += [entry.strip() for entry in re.split(r"^%$", text, flags=re.M) if entry.strip()]
    return tuple(texts)
