"""One RunConfig shared by both sides; its defaults reproduce the user's reference script."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomllib

from harness.errors import HarnessError

BUNDLED_DATA = Path(__file__).resolve().parent.parent / "data" / "demo_training_data.csv"
REAL_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "demo_training_data.csv"
# Per request: a full training of the user's model takes seconds; ten minutes means the port is stuck.
PORT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RunConfig:
    data: Path = BUNDLED_DATA
    label: str = "label"
    test_size: float = 0.2
    split_seed: int = 42
    batch_size: int = 32
    epochs: int = 20
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    threshold: float = 0.5
    seed: int = 0
    backend: str = "flex"
    fault: str = ""
    # End-to-end independent runs compared statistically in the metrics stage.
    seeds: int = 1
    # Per-stage tolerance overrides: {"forward": {"rtol": 1e-5, "atol": 1e-6}, ...}.
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    # A port running as its own process (docs/protocol.md) instead of the in-process extension;
    # it decides its own backend and faults.
    port_cmd: str | None = None
    port_timeout: float = PORT_TIMEOUT_S

    def with_(self, **kw: Any) -> RunConfig:
        return replace(self, **kw)

    def reference_hyperparameters(self) -> dict[str, Any]:
        """What the reference script uses, in the names the port's effective_config reports."""
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "clip_norm": None,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "threshold": self.threshold,
            "test_size": self.test_size,
            "split_seed": self.split_seed,
            "loss_reduction": "mean",
            "scaler_fit_rows": "all",
        }


def load_tolerance_overrides(start: Path | None = None) -> dict[str, dict[str, float]]:
    """Tolerances from ./harness.toml ([stage] tables) or [tool.harness.tolerances] in ./pyproject.toml."""
    here = start or Path.cwd()
    candidates = [
        (here / "harness.toml", ("tolerances",)),
        (here / "pyproject.toml", ("tool", "harness", "tolerances")),
    ]
    for path, keys in candidates:
        if not path.is_file():
            continue
        try:
            doc: Any = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise HarnessError(f"cannot parse {path}: {e}") from e
        for k in keys:
            doc = doc.get(k, {}) if isinstance(doc, dict) else {}
        if doc:
            out: dict[str, dict[str, float]] = {}
            from harness.stages import STAGE_NAMES

            for stage, tol in doc.items():
                if stage not in STAGE_NAMES:
                    raise HarnessError(
                        f"{path}: unknown stage '{stage}' in tolerances; stages are {', '.join(STAGE_NAMES)}"
                    )
                if not isinstance(tol, dict) or not set(tol) <= {"rtol", "atol"}:
                    raise HarnessError(f"{path}: tolerances.{stage} must be a table with rtol and/or atol")
                try:
                    out[stage] = {k: float(v) for k, v in tol.items()}
                except (TypeError, ValueError) as e:
                    raise HarnessError(f"{path}: tolerances.{stage} values must be numbers ({e})") from e
                from harness.tolerances import check_tolerance

                for k, v in out[stage].items():
                    check_tolerance(v, f"{path}: tolerances.{stage}.{k}")
            return out
    return {}


def load_port_settings(start: Path | None = None) -> tuple[str | None, float | None]:
    """`[port] cmd = "..."` and `[port] timeout_s = N` from ./harness.toml; (None, None) when absent."""
    path = (start or Path.cwd()) / "harness.toml"
    if not path.is_file():
        return None, None
    try:
        doc: Any = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"cannot parse {path}: {e}") from e
    port = doc.get("port", {})
    if not isinstance(port, dict):
        raise HarnessError(f"{path}: [port] must be a table with cmd and/or timeout_s")
    unknown = sorted(set(port) - {"cmd", "timeout_s"})
    if unknown:
        raise HarnessError(f"{path}: unknown key '{unknown[0]}' in [port]; keys are cmd and timeout_s")
    cmd = port.get("cmd")
    if cmd is not None and (not isinstance(cmd, str) or not cmd.strip()):
        raise HarnessError(f"{path}: [port] cmd must be a non-empty string")
    timeout = port.get("timeout_s")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise HarnessError(f"{path}: [port] timeout_s must be a positive number of seconds")
        timeout = float(timeout)
    return cmd, timeout
