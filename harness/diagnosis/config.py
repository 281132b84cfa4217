"""The config stage's causes: the port declares a hyperparameter the reference does not use. No replay
is needed: the port's own declaration is the evidence."""

from __future__ import annotations

from typing import Any

from harness.diagnosis import Cause


def diagnose(ref: dict[str, Any], got: dict[str, Any], differing: list[str]) -> list[Cause]:
    out = []
    for k in differing:
        v = got.get(k)
        params = {k: float(v)} if isinstance(v, (int, float)) and not isinstance(v, bool) else {}
        out.append(
            Cause(
                f"config.{k}",
                f"the port declares {k} = {v!r} (reference {ref[k]!r})",
                params,
                0.0,
                "the declared hyperparameters",
            )
        )
    return out
