"""Read the encoder of a CTranslate2 Whisper ``model.bin`` into transformers' names.

The registry ships Whisper weights only in CTranslate2's binary format (one file, or one
file split into parts that concatenate to it). Layout, little-endian::

    u32 version, str spec_name, u32 revision, u32 n_variables,
    n_variables x (str name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, bytes),
    u32 n_aliases, n_aliases x (str alias, str target)

where ``str`` is a u16 length (trailing NUL included) and the bytes. dtype codes: 0 f32,
1 i8, 2 i16, 3 i32, 4 f16, 5 bf16. Only ``encoder/*`` variables are kept; the decoder is
skipped without being read into memory, so peak memory is the encoder alone.

The encoder maps one to one onto ``transformers.WhisperEncoder``; the self-attention's
``linear_0`` holds q, k and v fused along dim 0 (k has no bias in Whisper, so CTranslate2
stores zeros there).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from mirage.featstore.errors import ConfigError

#: dtype code -> numpy dtype (bf16 is widened by hand below)
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
SUPPORTED_VERSIONS = (5, 6)
SPEC_NAME = "WhisperSpec"


class CT2FormatError(ConfigError):
    """A file is not a readable CTranslate2 Whisper model."""


class _Parts:
    """The concatenation of ``paths`` as one sequential stream (read and skip only)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]
        self._i = 0
        self._fh: BinaryIO | None = None
        self.offset = 0

    def __enter__(self) -> "_Parts":
        self._fh = open(self.paths[0], "rb")
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()

    def _advance(self) -> bool:
        self._fh.close()
        self._i += 1
        if self._i >= len(self.paths):
            self._fh = open(self.paths[-1], "rb")
            self._fh.seek(0, 2)
            self._i = len(self.paths) - 1
            return False
        self._fh = open(self.paths[self._i], "rb")
        return True

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self._fh.read(n - len(out))
            if not chunk and not self._advance():
                break
            out += chunk
        if len(out) != n:
            raise CT2FormatError(
                f"{self.paths[-1]}: expected {n} more bytes at offset {self.offset}, got {len(out)} "
                "(truncated model.bin, or a part missing); reinstall the weight package"
            )
        self.offset += n
        return bytes(out)

    def skip(self, n: int) -> None:
        while n > 0:
            here = self._fh.tell()
            end = self._fh.seek(0, 2)
            if end - here >= n:
                self._fh.seek(here + n)
                self.offset += n
                return
            n -= end - here
            self.offset += end - here
            if not self._advance():
                raise CT2FormatError(f"{self.paths[-1]}: truncated model.bin (a variable runs past the end); reinstall the weight package")

    def u8(self) -> int:
        return self.read(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.read(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.read(4))[0]

    def string(self) -> str:
        n = self.u16()
        raw = self.read(n)
        try:
            return raw[:-1].decode("utf-8") if raw.endswith(b"\0") else raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CT2FormatError(f"{self.paths[0]}: expected a UTF-8 name at offset {self.offset - n}, got bytes; "
                                 "not a CTranslate2 model.bin") from None


@dataclass
class EncoderWeights:
    """The encoder of a Whisper model: transformers state dict (float32) and its sizes."""

    state_dict: dict[str, np.ndarray]
    d_model: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    n_mels: int
    max_positions: int
    source_dtype: str


def read_variables(paths: Sequence[str | Path], prefix: str = "encoder/") -> tuple[dict[str, np.ndarray], str]:
    """Variables whose name starts with ``prefix`` (as stored) and the stored float dtype."""
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise CT2FormatError(f"expected a CTranslate2 model file, got {str(p)!r} (no such file); reinstall the weight package")
    out: dict[str, np.ndarray] = {}
    float_dtype = "float32"
    with _Parts(paths) as f:
        version = f.u32()
        if version not in SUPPORTED_VERSIONS:
            raise CT2FormatError(f"{paths[0]}: expected a CTranslate2 model.bin of version {SUPPORTED_VERSIONS}, "
                                 f"got version {version}; not a CTranslate2 model, or a newer format")
        spec = f.string()
        if spec != SPEC_NAME:
            raise CT2FormatError(f"{paths[0]}: expected a CTranslate2 {SPEC_NAME}, got {spec!r}")
        f.u32()  # spec revision
        for _ in range(f.u32()):
            name = f.string()
            rank = f.u8()
            dims = tuple(f.u32() for _ in range(rank))
            code = f.u8()
            n_bytes = f.u32()
            if code not in DTYPES:
                raise CT2FormatError(f"{paths[0]}: variable {name!r} has dtype code {code}; expected one of {sorted(DTYPES)}")
            item = np.dtype(DTYPES[code]).itemsize
            if n_bytes != item * int(np.prod(dims, dtype=np.int64)):
                raise CT2FormatError(f"{paths[0]}: variable {name!r}: expected {item * int(np.prod(dims))} bytes for "
                                     f"shape {dims}, got {n_bytes}; the file is damaged")
            if not name.startswith(prefix):
                f.skip(n_bytes)
                continue
            arr = np.frombuffer(f.read(n_bytes), dtype=np.dtype(DTYPES[code]).newbyteorder("<")).reshape(dims)
            if code == 5:  # bfloat16: the top half of a float32
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            if code in (4, 5):
                float_dtype = "float16" if code == 4 else "bfloat16"
            out[name] = arr
    return out, float_dtype


_LAYER = re.compile(r"^encoder/layer_(\d+)/(.+)$")
_LAYER_MAP = {
    "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
    "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
    "self_attention/linear_1/weight": "self_attn.out_proj.weight",
    "self_attention/linear_1/bias": "self_attn.out_proj.bias",
    "ffn/layer_norm/gamma": "final_layer_norm.weight",
    "ffn/layer_norm/beta": "final_layer_norm.bias",
    "ffn/linear_0/weight": "fc1.weight",
    "ffn/linear_0/bias": "fc1.bias",
    "ffn/linear_1/weight": "fc2.weight",
    "ffn/linear_1/bias": "fc2.bias",
}
_TOP_MAP = {
    "encoder/conv1/weight": "conv1.weight",
    "encoder/conv1/bias": "conv1.bias",
    "encoder/conv2/weight": "conv2.weight",
    "encoder/conv2/bias": "conv2.bias",
    "encoder/position_encodings/encodings": "embed_positions.weight",
    "encoder/layer_norm/gamma": "layer_norm.weight",
    "encoder/layer_norm/beta": "layer_norm.bias",
}


def encoder_weights(paths: Sequence[str | Path]) -> EncoderWeights:
    """Read and rename the encoder of the CTranslate2 Whisper model made of ``paths``."""
    raw, float_dtype = read_variables(paths)
    where = str(Path(paths[0]))
    sd: dict[str, np.ndarray] = {}
    n_heads = None
    for name, arr in raw.items():
        if name == "encoder/num_heads":
            n_heads = int(np.asarray(arr).reshape(-1)[0])
            continue
        if name in _TOP_MAP:
            sd[_TOP_MAP[name]] = arr.astype(np.float32)
            continue
        m = _LAYER.match(name)
        if not m:
            continue  # e.g. scale constants CTranslate2 adds for some specs
        i, rest = int(m.group(1)), m.group(2)
        if rest in _LAYER_MAP:
            sd[f"layers.{i}.{_LAYER_MAP[rest]}"] = arr.astype(np.float32)
        elif rest in ("self_attention/linear_0/weight", "self_attention/linear_0/bias"):
            kind = rest.rsplit("/", 1)[1]
            d = arr.shape[0] // 3
            if arr.shape[0] != 3 * d:
                raise CT2FormatError(f"{where}: {name}: expected a fused q/k/v of 3*d rows, got shape {arr.shape}")
            q, k, v = (arr[j * d:(j + 1) * d].astype(np.float32) for j in range(3))
            sd[f"layers.{i}.self_attn.q_proj.{kind}"] = q
            sd[f"layers.{i}.self_attn.v_proj.{kind}"] = v
            if kind == "weight":
                sd[f"layers.{i}.self_attn.k_proj.weight"] = k
    for key in ("conv1.weight", "embed_positions.weight", "layer_norm.weight"):
        if key not in sd:
            raise CT2FormatError(f"{where}: expected a Whisper encoder ({key} missing); not a Whisper model.bin, or damaged")
    d_model, n_mels = sd["conv1.weight"].shape[:2]
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("layers.")})
    expected = {f"layers.{i}.{v}" for i in range(n_layers) for v in (*_LAYER_MAP.values(), "self_attn.q_proj.weight",
                "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.v_proj.bias")}
    missing = sorted(expected - set(sd))
    if missing:
        raise CT2FormatError(f"{where}: expected every encoder layer variable, missing {missing[:3]}; the file is damaged")
    return EncoderWeights(
        state_dict=sd, d_model=int(d_model), n_layers=n_layers, n_heads=int(n_heads or max(1, d_model // 64)),
        ffn_dim=int(sd["layers.0.fc1.weight"].shape[0]), n_mels=int(n_mels),
        max_positions=int(sd["embed_positions.weight"].shape[0]), source_dtype=float_dtype,
    )
