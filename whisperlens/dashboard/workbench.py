"""The server's shared state: one model, the clips a user is looking at, and the corpus of the
feature store.

The model is shared state in the strictest sense: hooks, attention masks and skip flags are
set on its modules while an intervention is open, so two requests running it at once would see
each other's interventions. Every use of the model goes through `using_model()`, one request at
a time; a request that waits gets exactly the result it would get alone (tests/test_dashboard_model.py
checks this with parallel requests). On a 2-core machine one model run at a time is also the
fastest way through: torch already spreads one run over the cores.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from ..audio import N_SAMPLES, SAMPLE_RATE, load_audio
from ..errors import WhisperLensError

MAX_CLIP_SECONDS = N_SAMPLES // SAMPLE_RATE  # one Whisper window: the encoder's features cover at most 30 s
CLIPS_KEPT = 32  # uploaded clips kept in memory, least recently used dropped first


class Workbench:
    def __init__(self, model_name: str = "tiny.en", device: str = "cpu", store=None, mode: str = "short"):
        self.model_name, self.device = model_name, device
        self.store = store
        self.short = mode != "exact"  # the store's mode: features are read as they were harvested
        self._lock = threading.Lock()
        self._model = None
        self._uploads = Recent(CLIPS_KEPT)  # key -> audio
        self.baselines = Recent(CLIPS_KEPT)  # key -> the transcript without interventions
        # a 30 s window's log-mel -> the encoder's clean output (encoder_reuse.py): follow-up
        # pokes that leave the encoder alone (word removal, decoder steering) do not rerun it
        self.encoder_outputs = Recent(CLIPS_KEPT)
        self._padding = None
        self._bases: dict[str, object] = {}

    # ---- the model ---------------------------------------------------------------------------

    @contextmanager
    def using_model(self):
        """The model, held by this thread alone until the block ends."""
        with self._lock:
            if self._model is None:
                from ..models.loading import load_model

                self._model = load_model(self.model_name, device=self.device)
            yield self._model

    def padding(self, model):
        """The encoder output for padding-only audio, what word removal puts in (computed once)."""
        if self._padding is None:
            from ..transcripts import padding_features

            self._padding = padding_features(model)
        return self._padding

    def language(self, model) -> str | None:
        return "en" if not model.is_multilingual else None

    def basis(self, site: str):
        """The basis a store site was harvested with (built once; random directions from their seed)."""
        from ..features.store import basis_for_site

        site = self.require_store().check_site(site)
        if site not in self._bases:
            self._bases[site] = basis_for_site(self.store, site)
        return self._bases[site]

    def require_store(self):
        if self.store is None:
            raise WhisperLensError("this run directory has no feature store; run `whisperlens run` (or "
                                   "`whisperlens features run`) first, or pass --store")
        return self.store

    @cached_property
    def corpus(self):
        from ..features.build import open_corpus_of_store

        return open_corpus_of_store(self.require_store())

    # ---- clips -------------------------------------------------------------------------------

    def add_upload(self, data: bytes, filename: str) -> str:
        """Decode an uploaded file as the CLI decodes one (load_audio's checks) and keep it; its key."""
        suffix = Path(filename or "upload").suffix[:16]
        with tempfile.NamedTemporaryFile(suffix=suffix) as file:
            file.write(data)
            file.flush()
            try:
                audio = load_audio(file.name)
            except WhisperLensError as error:
                # the temporary file's name means nothing to the user: name their file instead
                raise WhisperLensError(str(error).replace(file.name, filename or "the upload")) from None
        if len(audio) > N_SAMPLES:
            raise WhisperLensError(f"{filename or 'the upload'}: {len(audio) / SAMPLE_RATE:.1f} s long; "
                                   f"the dashboard takes clips of at most {MAX_CLIP_SECONDS} s")
        key = "upload-" + hashlib.sha256(audio.tobytes()).hexdigest()[:16]
        self._uploads.put(key, audio)
        return key

    def clip(self, key: str) -> np.ndarray:
        """The audio of `corpus-N` (clip N of the store's corpus) or of an upload's key."""
        if key.startswith("corpus-") and key[7:].isdigit():
            index = int(key[7:])
            if index >= len(self.corpus):
                raise ClipNotFound(key)
            return np.asarray(self.corpus[index].audio, dtype=np.float32)[:N_SAMPLES]
        audio = self._uploads.get(key)
        if audio is None:
            raise ClipNotFound(key)
        return audio


class Recent:
    """A thread-safe mapping that keeps its `size` most recently used entries."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key, value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get(self, key):
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]


class ClipNotFound(WhisperLensError):
    def __init__(self, key: str):
        super().__init__(f"no clip {key[:80]!r}: upload it again, or pick a corpus clip")
