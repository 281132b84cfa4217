"""Frames of the port protocol (docs/protocol.md): magic, JSON header, safetensors payload.

Layout: b"BDIF" | u32 LE header length | UTF-8 JSON object | u64 LE payload length | safetensors bytes.
Only numpy and safetensors' numpy API are used, so no pickle can ever cross the pipe.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from harness.errors import PortProtocolError

MAGIC = b"BDIF"
MAX_HEADER = 64 * 1024 * 1024
MAX_PAYLOAD = 16 * 1024**3
HEADER_LEN = struct.Struct("<I")
PAYLOAD_LEN = struct.Struct("<Q")

# JSON has no NaN or infinity, and a diverging port produces both (an unclamped BCE loss is inf).
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass
class Frame:
    header: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def encode_header(header: Mapping[str, Any]) -> bytes:
    # allow_nan=False: Python would otherwise write bare NaN, which a strict parser (serde_json) rejects.
    return json.dumps(_finite(header), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return "NaN" if math.isnan(o) else ("Infinity" if o > 0 else "-Infinity")
    if isinstance(o, Mapping):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def encode_payload(tensors: Mapping[str, np.ndarray]) -> bytes:
    if not tensors:
        return b""
    # safetensors copies raw memory: a Fortran-ordered or strided view would be sent scrambled.
    return st_save({name: np.require(np.asarray(t), requirements="C") for name, t in tensors.items()})


def encode_frame(header: Mapping[str, Any], tensors: Mapping[str, np.ndarray] | None = None) -> bytes:
    head = encode_header(header)
    payload = encode_payload(tensors or {})
    if len(head) > MAX_HEADER:
        raise ValueError(f"frame header of {len(head)} bytes exceeds the protocol's {MAX_HEADER}")
    return b"".join((MAGIC, HEADER_LEN.pack(len(head)), head, PAYLOAD_LEN.pack(len(payload)), payload))


def decode_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise PortProtocolError(f"the port sent a frame header that is not UTF-8 JSON ({e}): {preview(raw)}") from e
    if not isinstance(header, dict):
        raise PortProtocolError(f"the port sent a frame header that is not a JSON object: {preview(raw)}")
    return header


def decode_payload(raw: bytes) -> dict[str, np.ndarray]:
    if not raw:
        return {}
    try:
        return dict(st_load(raw))
    except Exception as e:  # safetensors raises its own SafetensorError, not a stable public class
        raise PortProtocolError(f"the port sent a payload that is not a safetensors buffer ({e})") from e


def read_frame(read_exact: Callable[[int], bytes], more: Callable[[], bytes] = bytes) -> Frame:
    """One frame from a stream. `read_exact(n)` returns exactly n bytes or raises (EOF, timeout);
    `more()` returns whatever else is at hand, so that garbage is shown beyond its first 4 bytes."""
    magic = read_exact(4)
    if magic != MAGIC:
        raise PortProtocolError(f"the port wrote something that is not a frame: {preview(magic + more())}")
    (h,) = HEADER_LEN.unpack(read_exact(HEADER_LEN.size))
    if h > MAX_HEADER:
        raise PortProtocolError(f"the port sent a frame header of {h} bytes (the limit is {MAX_HEADER})")
    header = decode_header(read_exact(h))
    (p,) = PAYLOAD_LEN.unpack(read_exact(PAYLOAD_LEN.size))
    if p > MAX_PAYLOAD:
        raise PortProtocolError(f"the port sent a payload of {p} bytes (the limit is {MAX_PAYLOAD})")
    return Frame(header, decode_payload(read_exact(p) if p else b""))


def decode_frame(data: bytes) -> Frame:
    """One whole frame from bytes; trailing bytes are an error."""
    pos = 0

    def read_exact(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise PortProtocolError(f"truncated frame: wanted {n} bytes at offset {pos}, {len(data) - pos} left")
        pos += n
        return data[pos - n : pos]

    frame = read_frame(read_exact, lambda: data[4:])
    if pos != len(data):
        raise PortProtocolError(f"{len(data) - pos} bytes after the end of the frame")
    return frame


def preview(raw: bytes, limit: int = 40) -> str:
    return repr(bytes(raw[:limit])) + ("..." if len(raw) > limit else "")


def json_float(value: Any, what: str) -> float:
    """A float header field: a number, or the protocol's strings for non-finite values. serde_json
    writes a non-finite f64 as null, so null reads as NaN rather than as a protocol error."""
    if value is None:
        return math.nan
    if isinstance(value, str) and value in NONFINITE:
        return NONFINITE[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PortProtocolError(f"{what}: expected a number, got {value!r}")
    return float(value)
