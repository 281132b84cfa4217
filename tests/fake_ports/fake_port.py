"""A port that misbehaves on purpose, one way per mode, for the transport's failure tests.

    python tests/fake_ports/fake_port.py MODE

It frames by hand (struct + json, safetensors for tensors) instead of importing harness.transport,
so that a mistake shared by the harness's encoder and decoder cannot hide here.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from typing import Any, BinaryIO

import numpy as np
from safetensors.numpy import save

MODES = (
    "crash",
    "garbage",
    "hang",
    "busy",
    "protocol4",
    "protocol2",
    "protocol1",
    "panic",
    "wrong-id",
    "deaf",
    "scripted",
    "bad-error",
)
METHODS = ["hello", "loss", "optimizer_step", "train", "evaluate", "shutdown"]


def read_frame(src: BinaryIO) -> dict[str, Any] | None:
    head = src.read(8)
    if len(head) < 8:
        return None
    assert head[:4] == b"BDIF", head
    (h,) = struct.unpack("<I", head[4:])
    header = json.loads(src.read(h))
    (p,) = struct.unpack("<Q", src.read(8))
    src.read(p)
    return header


def write_frame(header: dict[str, Any], tensors: dict[str, np.ndarray] | None = None) -> None:
    head = json.dumps(header).encode()
    payload = save(tensors) if tensors else b""
    out = sys.stdout.buffer
    out.write(b"BDIF" + struct.pack("<I", len(head)) + head + struct.pack("<Q", len(payload)) + payload)
    out.flush()


def ok(rid: int, result: dict[str, Any] | None = None, tensors: dict[str, np.ndarray] | None = None) -> None:
    write_frame({"id": rid, "ok": True, "result": result or {}}, tensors)


def params(scale: float) -> dict[str, np.ndarray]:
    return {
        "fc1.weight": np.full((2, 3), scale, np.float32),
        "fc1.bias": np.full((2,), scale, np.float32),
    }


def prefixed(prefix: str, group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in group.items()}


def scripted(rid: int, method: str, args: dict[str, Any]) -> None:
    """Small, fixed, well-formed answers: enough to check the client's shapes without the extension."""
    if method == "loss":
        # serde_json writes a non-finite f64 as null; the protocol's own spelling is a string.
        ok(rid, {"loss": "Infinity"}, {"grad": np.array([1.0, -2.0], np.float32)})
    elif method == "optimizer_step":
        step = args["state_step"] + 1
        st = {**prefixed("state/exp_avg", params(0.1)), **prefixed("state/exp_avg_sq", params(0.01))}
        ok(rid, {"state_step": step}, {**prefixed("params", params(1.0)), **st})
    elif method == "train":
        epochs = args["epochs"]
        for e in range(1, epochs + 1):
            write_frame({"id": rid, "event": "progress", "epoch": e, "loss": None if e == 2 else 1.0 / e})
        t: dict[str, np.ndarray] = {
            "step_loss": np.array([0.5, 0.25, 0.125], np.float32),
            "epoch_loss": np.arange(epochs, dtype=np.float64),
            "orders": np.tile(np.arange(4, dtype=np.int64), (epochs, 1)),
            **prefixed("init", params(0.0)),
            **prefixed("final", params(9.0)),
            **prefixed("state/exp_avg", params(0.1)),
            **prefixed("state/exp_avg_sq", params(0.01)),
        }
        for e in range(epochs):
            t.update(prefixed(f"epoch_params/{e}", params(float(e))))
        for k in range(args["record_steps"]):
            t.update(prefixed(f"step_params/{k}", params(10.0 + k)))
            t.update(prefixed(f"step_grads/{k}", params(-10.0 - k)))
        ok(rid, {"state_step": 7}, t)
    elif method == "evaluate":
        ok(rid, {"accuracy": 0.75}, {"probs": np.array([0.1, 0.9], np.float32)})
    else:
        write_frame({"id": rid, "ok": False, "error": {"kind": "unsupported", "message": f"no {method} here"}})


def main(mode: str) -> int:
    if mode not in MODES:
        sys.stderr.write(f"unknown mode {mode}\n")
        return 64
    src = sys.stdin.buffer
    while True:
        req = read_frame(src)
        if req is None:
            return 0
        rid, method, args = req["id"], req["method"], req.get("args", {})
        if method == "hello":
            if mode == "garbage":
                # A port that logs to stdout: the harness must name it, not hang waiting for a frame.
                sys.stdout.buffer.write(b"hello world\n")
                sys.stdout.buffer.flush()
                src.read()
                return 0
            # protocol4: a port from a future harness; protocol1: one built before samples had shapes,
            # protocol2: before integer samples.
            version = {"protocol4": 4, "protocol2": 2, "protocol1": 1}.get(mode, args["protocol"])
            ok(
                rid,
                {
                    "protocol": version,
                    "name": f"fake-{mode}",
                    "backend": "fake",
                    "faults": ["a", "b"],
                    "methods": METHODS if mode in ("scripted", "protocol1", "protocol2") else [],
                },
            )
            if mode == "deaf":
                time.sleep(3600)
            continue
        if method == "shutdown":
            ok(rid)
            return 0
        if mode == "crash":
            sys.stderr.write("fake port: starting\nfake port: boom: index out of bounds\n")
            sys.stderr.flush()
            return 3
        if mode == "hang":
            sys.stderr.write("fake port: waiting for a lock\n")
            sys.stderr.flush()
            time.sleep(3600)
        elif mode == "busy":
            while True:
                pass
        elif mode == "panic":
            write_frame(
                {
                    "id": rid,
                    "ok": False,
                    "error": {
                        "kind": "panic",
                        "message": "index out of bounds: the len is 3 but the index is 7\nbacktrace...",
                    },
                }
            )
        elif mode == "bad-error":
            write_frame({"id": rid, "ok": False, "error": {"kind": "oops", "message": "?"}})
        elif mode == "wrong-id":
            ok(rid + 1)
        elif mode in ("scripted", "protocol1", "protocol2"):
            scripted(rid, method, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
