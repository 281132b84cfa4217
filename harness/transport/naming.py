"""The protocol's tensor names: groups of named tensors travel under a prefix.

`params/fc1.weight` is parameter `fc1.weight` of group `params`; numbered groups add an index
(`epoch_params/3/fc1.weight`); optimizer state adds the slot (`state/exp_avg/fc1.weight`).
Parameter names contain dots, never slashes, so the last segment is always the parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from harness.errors import PortProtocolError

Params = dict[str, np.ndarray]
STATE = "state"


def flatten(prefix: str, group: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{name}": value for name, value in group.items()}


def _ordered(group: Params, order: Iterable[str]) -> Params:
    # Protocol payloads carry no order (safetensors sorts its entries); callers expect the order they
    # sent (PyTorch's state_dict order), with anything new after it, sorted.
    order = [k for k in order if k in group]
    return {k: group[k] for k in [*order, *sorted(set(group) - set(order))]}


def group(tensors: Mapping[str, np.ndarray], prefix: str, order: Iterable[str] = ()) -> Params:
    """The tensors directly under `prefix/` (one more segment), by their own name."""
    head = prefix + "/"
    out = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head) and "/" not in k[len(head) :]}
    return _ordered(out, order)


def indexed_groups(tensors: Mapping[str, np.ndarray], prefix: str, order: Iterable[str] = ()) -> list[Params]:
    """`prefix/<k>/<name>` as a list indexed by k, which must run 0, 1, ... without gaps."""
    head = prefix + "/"
    found: dict[int, Params] = {}
    for name, value in tensors.items():
        if not name.startswith(head):
            continue
        index, sep, pname = name[len(head) :].partition("/")
        if not sep or not index.isdigit() or "/" in pname:
            raise PortProtocolError(f"tensor '{name}' does not follow '{prefix}/<index>/<parameter>'")
        found.setdefault(int(index), {})[pname] = value
    if sorted(found) != list(range(len(found))):
        raise PortProtocolError(f"'{prefix}' groups are numbered {sorted(found)}; expected 0 to {len(found) - 1}")
    order = list(order)
    return [_ordered(found[k], order) for k in range(len(found))]


def flatten_indexed(prefix: str, groups: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: v for i, g in enumerate(groups) for k, v in flatten(f"{prefix}/{i}", g).items()}


def state_slots(tensors: Mapping[str, np.ndarray]) -> list[str]:
    head = STATE + "/"
    return sorted({k[len(head) :].split("/", 1)[0] for k in tensors if k.startswith(head) and k.count("/") == 2})


def flatten_state(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """An Adam state as the harness holds it ({"step", "exp_avg": {...}, "exp_avg_sq": {...}}) to tensors;
    the step travels in the header (`state_step`)."""
    out: dict[str, np.ndarray] = {}
    for slot, value in state.items():
        if slot != "step":
            out.update(flatten(f"{STATE}/{slot}", value))
    return out


def unflatten_state(tensors: Mapping[str, np.ndarray], step: int, order: Iterable[str] = ()) -> dict[str, Any]:
    order = list(order)
    return {"step": step, **{slot: group(tensors, f"{STATE}/{slot}", order) for slot in state_slots(tensors)}}
