"""Causes for a port's model whose parameters are not the reference's: read from the two parameter lists
(names and shapes), which are the whole evidence; nothing is replayed.

- A bias one side has and the other lacks, its layer's weight present on both (`LinearConfig::with_bias`).
- The same parameters under other names: as many tensors, the same shapes in the same order, differing
  in their module paths only. The rules that map them go in `[port.rename]` (harness/rename.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from harness.diagnosis import Cause

Shapes = Mapping[str, tuple[int, ...]]


def _module(name: str) -> tuple[str, str]:
    module, _, leaf = name.rpartition(".")
    return module, leaf


def _biases(missing: list[str], have: Shapes) -> list[str]:
    """The layers of `missing` names that are all biases whose weight `have` holds; [] otherwise."""
    layers = []
    for name in missing:
        module, leaf = _module(name)
        if leaf != "bias" or f"{module}.weight" not in have:
            return []
        layers.append(module)
    return layers


def _modules(shapes: Shapes) -> list[tuple[str, dict[str, tuple[int, ...]]]]:
    """Module paths in order of first appearance, each with its parameters' leaf names and shapes."""
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in shapes.items():
        module, leaf = _module(name)
        out.setdefault(module, {})[leaf] = tuple(shape)
    return list(out.items())


def rename_rules(reference: Shapes, port: Shapes) -> dict[str, str] | None:
    """Rules mapping the port's module paths to the reference's, when both models hold the same modules
    in the same order, each with the same parameters (leaf names and shapes), and only the paths differ;
    None otherwise."""
    ref, own = _modules(reference), _modules(port)
    if len(ref) != len(own) or any(rp != pp for (_, rp), (_, pp) in zip(ref, own, strict=True)):
        return None
    rules = {rf"^{re.escape(pm)}\b": rm for (rm, _), (pm, _) in zip(ref, own, strict=True) if pm != rm}
    return rules or None


def toml_rules(rules: Mapping[str, str]) -> str:
    """The rules as harness.toml lines (literal-string keys keep the regex's backslashes)."""
    return "[port.rename] " + "; ".join(f"'{k}' = \"{v}\"" for k, v in rules.items())


def diagnose(reference: Shapes, port: Shapes) -> list[Cause]:
    evidence = f"the parameter lists ({len(reference)} tensors in the reference, {len(port)} in the port's model)"
    only_ref = [n for n in reference if n not in port]
    only_port = [n for n in port if n not in reference]
    causes = []
    if only_ref and not only_port and (layers := _biases(only_ref, port)):
        causes.append(
            Cause(
                "weights.no_bias",
                f"the port's {', '.join(layers)} ha{'s' if len(layers) == 1 else 've'} no bias "
                "(Burn's LinearConfig has one unless .with_bias(false))",
                {},
                0.0,
                evidence,
            )
        )
    if only_port and not only_ref and (layers := _biases(only_port, reference)):
        causes.append(
            Cause(
                "weights.extra_bias",
                f"the port's {', '.join(layers)} ha{'s' if len(layers) == 1 else 've'} a bias the reference's "
                "lacks (nn.Linear(bias=False): build it with LinearConfig::with_bias(false))",
                {},
                0.0,
                evidence,
            )
        )
    if only_ref and only_port and (rules := rename_rules(reference, port)):
        causes.append(
            Cause(
                "weights.names",
                f"the same parameters under the port's own names (shapes match in order); map them with "
                f"{toml_rules(rules)}",
                {},
                0.0,
                evidence,
            )
        )
    return causes
