"""Read CTranslate2 Whisper checkpoints (the faster-whisper format) with numpy alone.

The layout is that of `ModelSpec._serialize` in ctranslate2's `specs/model_spec.py`:
a format version, the spec name and revision, then each variable as
(name, rank, dims, dtype id, byte count, bytes), then (alias, target) pairs.
Parsing it here keeps ctranslate2, a 40 MB native package, out of run-time dependencies.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import WhisperLensError

# ctranslate2's DataType enum, in declaration order.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class _Reader:
    def __init__(self, data: bytes, source: str):
        self.data, self.offset, self.source = data, 0, source

    def take(self, n: int) -> bytes:
        if self.offset + n > len(self.data):
            raise WhisperLensError(f"{self.source}: truncated CTranslate2 model file (ends at byte {len(self.data)})")
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = self.take(length)
        if length == 0 or raw[-1] != 0:
            raise WhisperLensError(f"{self.source}: corrupt CTranslate2 model file (bad string at byte {self.offset})")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise WhisperLensError(f"{self.source}: corrupt CTranslate2 model file (bad string at byte {self.offset})") from None


def read_ct2_model(data: bytes, source: str = "model.bin") -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 model.bin; returns the spec name and arrays by variable name.

    Floating-point variables come back as float32; integer options keep their type.

    Aliases are resolved into the returned dictionary.
    """
    reader = _Reader(data, source)
    version = reader.unpack("I")
    if version < 5 or version > 6:
        raise WhisperLensError(f"{source}: not a CTranslate2 model file (format version {version})")
    spec_name = reader.string()
    reader.unpack("I")  # spec revision
    n_variables = reader.unpack("I")
    if n_variables > 100_000:
        raise WhisperLensError(f"{source}: corrupt CTranslate2 model file ({n_variables} variables)")
    variables: dict[str, np.ndarray] = {}
    for _ in range(n_variables):
        name = reader.string()
        rank = reader.unpack("B")
        shape = tuple(reader.unpack("I") for _ in range(rank))
        dtype_id = reader.unpack("B")
        n_bytes = reader.unpack("I")
        if dtype_id not in _DTYPES:
            raise WhisperLensError(f"{source}: corrupt CTranslate2 model file (dtype id {dtype_id} for {name})")
        raw = reader.take(n_bytes)
        variables[name] = _decode(raw, _DTYPES[dtype_id], shape, name, source)
    n_aliases = reader.unpack("I")
    for _ in range(n_aliases):
        alias, target = reader.string(), reader.string()
        if target not in variables:
            raise WhisperLensError(f"{source}: corrupt CTranslate2 model file (alias {alias} -> missing {target})")
        variables[alias] = variables[target]
    if reader.offset != len(data):
        raise WhisperLensError(f"{source}: corrupt CTranslate2 model file ({len(data) - reader.offset} trailing bytes)")
    return spec_name, variables


def _decode(raw: bytes, dtype, shape: tuple[int, ...], name: str, source: str) -> np.ndarray:
    if dtype == "bfloat16":
        # numpy has no bfloat16: widen the 16 stored bits into the high half of a float32.
        array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        array = np.frombuffer(raw, dtype)
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise WhisperLensError(f"{source}: corrupt CTranslate2 model file (size mismatch for {name})")
    if name.endswith("weight_scale"):
        raise WhisperLensError(f"{source}: quantized CTranslate2 models are not supported; use a float16/float32 conversion")
    array = array.reshape(shape)
    # Integer scalars are spec options (activation, alignment layer, ...); weights become float32.
    return array if np.issubdtype(array.dtype, np.integer) else array.astype(np.float32)

