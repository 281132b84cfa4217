"""The reference cache: what the reference side computes (its training trace, the envelope and seed runs)
depends only on the data, the resolved configuration, the harness's own source, torch's and numpy's
versions and the CPU kernels they dispatch to, never on the port. A run keyed by all of those stores the
results, content-addressed, under `.harness-cache/` (or `$HARNESS_CACHE`), and the next run with the same
key reads them instead of training: a user editing the port pays only for the port's side.

An entry is two files: `<key>.<part>.safetensors` (every array, the structure as JSON in its metadata)
and `<key>.<part>.json` (the format, the key's inputs and the safetensors file's sha256). Each is written
to a temporary file and renamed into place, so a reader sees a whole file or none; a reader verifies the
hash, and an entry that is missing, stale, truncated or altered is recomputed and rewritten, never
trusted. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from safetensors.numpy import load, save

from harness import __version__

T = TypeVar("T")
FORMAT = 1
ENV = "HARNESS_CACHE"
DEFAULT_DIR = ".harness-cache"
# Keys kept, the most recently written: every edit of the harness's source, the data or the config is a
# new key (about 35 MB for the classifier on the bundled data), and the old ones are never read again.
KEEP_KEYS = 8
HARNESS_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT_DIR)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_hash(root: Path = HARNESS_DIR) -> str:
    """Every Python file of the harness, by path and content: a change to any of them (the reference, the
    training loop, the envelope) is a new key."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def kernel_level() -> str:
    """What decides which CPU kernels torch and numpy run: their own reports and the variables that
    override them. Two machines with the same key compute the same numbers."""
    import torch

    cpu = torch.backends.cpu.get_cpu_capability()
    simd = ""
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # type: ignore[attr-defined]

        simd = ",".join(sorted(k for k, v in __cpu_features__.items() if v))
    except ImportError:
        simd = "unknown"
    overrides = {k: os.environ.get(k, "") for k in ("ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES")}
    return json.dumps({"machine": platform.machine(), "torch": cpu, "numpy": simd, **overrides}, sort_keys=True)


def torch_version() -> str:
    """torch.__version__ (local tag included: +cpu, +cu130), read from torch/version.py without importing
    torch, which takes seconds a run answered from the cache need not spend."""
    if "torch" in sys.modules:
        return str(sys.modules["torch"].__version__)
    spec = importlib.util.find_spec("torch")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        try:
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", (Path(loc) / "version.py").read_text(), re.M)
        except OSError:
            continue
        if found:
            return found.group(1)
    import torch

    return str(torch.__version__)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def key_inputs(
    data: Path, config: dict[str, Any], reference_file: Path | None = None, kernels: bool = True
) -> dict[str, str]:
    """Everything the reference's numbers depend on, each hashed or spelled out. Without `kernels`: the
    key of what does not depend on the CPU's float kernels (the reference's declared hyperparameters),
    computed without importing torch."""
    inputs = {
        "format": str(FORMAT),
        "harness": __version__,
        "source": source_hash(),
        "reference_module": _sha256(reference_file.read_bytes()) if reference_file and reference_file.is_file() else "",
        "data": _sha256(Path(data).read_bytes()),
        "config": json.dumps(config, sort_keys=True, default=str),
        "torch": torch_version(),
        "numpy": np.__version__,
        # The split and the scaler's statistics (the prepared data) are theirs.
        "sklearn": _version("scikit-learn"),
        "pandas": _version("pandas"),
    }
    if kernels:
        inputs["kernels"] = kernel_level()
    return inputs


def key_of(inputs: dict[str, str]) -> str:
    return _sha256(json.dumps(inputs, sort_keys=True).encode())[:32]


# Encoding: a JSON skeleton with every array replaced by a name in the safetensors file.
def _types() -> dict[str, type]:
    """The dataclasses the cache may hold, by name: only these are ever rebuilt from an entry."""
    from harness.csvcheck import Table
    from harness.data import Prepared
    from harness.reference.ensemble import Ensemble, Run
    from harness.reference.structure import Trace

    return {c.__name__: c for c in (Trace, Run, Ensemble, Prepared, Table)}


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        name = str(len(arrays))
        arrays[name] = np.ascontiguousarray(obj)
        return {"a": name}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        kind = type(obj).__name__
        if _types().get(kind) is not type(obj):
            raise TypeError(f"the cache cannot hold a {kind}")
        fields = {f.name: _encode(getattr(obj, f.name), arrays) for f in dataclasses.fields(obj)}
        return {"dc": kind, "f": fields}
    if isinstance(obj, dict):
        return {"d": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return {"l" if isinstance(obj, list) else "t": [_encode(v, arrays) for v in obj]}
    if obj is None or isinstance(obj, bool | int | float | str):
        return {"v": obj}
    raise TypeError(f"the cache cannot hold a {type(obj).__name__}")


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    if "a" in node:
        return arrays[node["a"]]
    if "dc" in node:
        cls = _types()[node["dc"]]
        return cls(**{k: _decode(v, arrays) for k, v in node["f"].items()})
    if "d" in node:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["d"]}
    if "l" in node:
        return [_decode(v, arrays) for v in node["l"]]
    if "t" in node:
        return tuple(_decode(v, arrays) for v in node["t"])
    return node["v"]


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Cache:
    """Entries under `root` for one key; `status` records, per part, "hit", "miss" or why an entry on disk
    was not used ("stale: ..."), for the report."""

    root: Path
    key: str
    inputs: dict[str, str]
    status: dict[str, str] = dataclasses.field(default_factory=dict)

    def _paths(self, part: str) -> tuple[Path, Path]:
        return self.root / f"{self.key}.{part}.safetensors", self.root / f"{self.key}.{part}.json"

    def load(self, part: str) -> Any | None:
        """The stored value, or None (the reason in `status`) when there is none that can be trusted."""
        data_path, index_path = self._paths(part)
        if not data_path.exists() and not index_path.exists():
            self.status[part] = "miss"
            return None
        try:
            index = json.loads(index_path.read_text())
            data = data_path.read_bytes()
            if index.get("format") != FORMAT or index.get("inputs") != self.inputs:
                raise ValueError("written for other inputs")
            if index.get("sha256") != _sha256(data):
                raise ValueError("its content does not match its hash")
            n = int.from_bytes(data[:8], "little")
            skeleton = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["skeleton"])
            value = _decode(skeleton, load(data))
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
            self.status[part] = f"stale: {e}"
            return None
        except Exception as e:  # safetensors' own errors on a damaged file
            self.status[part] = f"stale: {type(e).__name__}"
            return None
        self.status[part] = "hit"
        return value

    def store(self, part: str, value: Any) -> None:
        arrays: dict[str, np.ndarray] = {}
        skeleton = _encode(value, arrays)
        data = save(arrays, metadata={"skeleton": json.dumps(skeleton)})
        self.root.mkdir(parents=True, exist_ok=True)
        data_path, index_path = self._paths(part)
        _write_atomic(data_path, data)
        index = {"format": FORMAT, "part": part, "inputs": self.inputs, "sha256": _sha256(data)}
        _write_atomic(index_path, json.dumps(index, indent=1).encode())
        evict(self.root, KEEP_KEYS, protect=self.key)

    def get(self, part: str, compute: Callable[[], T]) -> T:
        """The stored value, or `compute()`'s, stored for the next run."""
        value = self.load(part)
        if value is not None:
            return value
        value = compute()
        self.store(part, value)
        return value


def evict(root: Path, keep: int, protect: str = "") -> list[str]:
    """Removes every key but the `keep` most recently written (and `protect`); returns the keys removed.
    A run reading a key removed under it finds it missing and recomputes it."""
    newest: dict[str, float] = {}
    for p in root.glob("*.*.json"):
        key = p.name.split(".", 1)[0]
        try:
            newest[key] = max(newest.get(key, 0.0), p.stat().st_mtime)
        except OSError:
            continue
    ranked = sorted(newest, key=lambda k: newest[k], reverse=True)
    gone = [k for k in ranked[keep:] if k != protect]
    for key in gone:
        for p in root.glob(f"{key}.*"):
            p.unlink(missing_ok=True)
    return gone


def info(root: Path | None = None) -> dict[str, Any]:
    root = root or cache_dir()
    files = [p for p in root.glob("*.safetensors")] if root.is_dir() else []
    keys = {p.name.split(".", 1)[0] for p in files}
    size = sum(p.stat().st_size for p in root.iterdir() if p.is_file()) if root.is_dir() else 0
    return {"dir": str(root), "keys": len(keys), "entries": len(files), "bytes": size}


def clear(root: Path | None = None) -> int:
    """Removes every entry (and leftover temporary file); returns how many files went."""
    root = root or cache_dir()
    if not root.is_dir():
        return 0
    n = 0
    for p in root.iterdir():
        if p.is_file() and (p.suffix in (".safetensors", ".json", ".tmp")):
            p.unlink(missing_ok=True)
            n += 1
    return n
