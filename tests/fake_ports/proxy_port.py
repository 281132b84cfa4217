"""The in-process Burn port (harness._burn, through its typed face harness.port.BurnPort) served over
docs/protocol.md, for end-to-end tests of the
subprocess path before a native server exists:

    harness diff all --port-cmd "python tests/fake_ports/proxy_port.py [--backend flex] [--fault NAME] [--epochs N]
                                [--without METHOD,...] [--unlisted] [--own-names REF=OWN,...] [--no-bias LAYER,...]"

--without drops methods, as a partial port does: hello does not list them (or, with --unlisted, lists
them all and answers an `unsupported` error when one is called, as a Rust port on the trait's defaults does).
--own-names gives the port's model its own module names (fc1=input_layer: `input_layer.weight`, layer
`input_layer`); --no-bias removes layers' biases from it (computed as a zero bias). Parameters under other
names are answered with a `structure` error listing the model's own, as burn_diff::layout does.
--loss-on makes `loss` take logits z, as a port configured with `[port] loss_input = "logits"`:
`with-logits` is BCE with logits (Burn's `with_logits(true)`), `sigmoid` the port's own loss on sigmoid(z).

The same port in both places must give the same stage statuses; a difference is a transport bug.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, BinaryIO

# Run as a script, its folder is on sys.path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from harness import _burn
from harness.errors import HarnessError, PortRejected, PortStructureError
from harness.port import BurnPort
from harness.transport import naming
from harness.transport.frames import Frame, encode_frame, read_frame

PROTOCOL = 1
# The methods a Rust server answers, read from burn_diff::serve::METHODS through the extension.
METHODS: list[str] = list(_burn.METHODS)
Reply = tuple[dict[str, Any], dict[str, np.ndarray]]


class Rejected(Exception):
    def __init__(self, kind: str, message: str, parameters: list[tuple[str, list[int]]] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.parameters = parameters


def _read_exact(src: BinaryIO, n: int) -> bytes:
    data = src.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _write(header: dict[str, Any], tensors: dict[str, np.ndarray] | None = None) -> None:
    sys.stdout.buffer.write(encode_frame(header, tensors))
    sys.stdout.buffer.flush()


def _kind(message: str) -> str:
    # An error of the proxy's own code (not the extension's): its message tells a shape error apart.
    if message.startswith("internal error in the Burn port"):
        return "panic"
    return "shape" if "shape" in message else "input"


class Proxy:
    def __init__(
        self,
        backend: str,
        fault: str,
        epochs: int,
        without: tuple[str, ...] = (),
        listed: bool = True,
        own: dict[str, str] | None = None,
        no_bias: tuple[str, ...] = (),
        loss_on: str = "",
        output_only: bool = False,
        own_loop: bool = False,
    ) -> None:

        self.output_only = output_only
        self.own_loop = own_loop
        self.own = own or {}
        self.loss_on = loss_on
        self.no_bias = {f"{layer}.bias" for layer in no_bias}

        self.port = BurnPort(backend, fault, epochs)
        self.without = without
        self.methods = [m for m in METHODS if m not in without] if listed else METHODS
        self.backend = backend
        self.faults = [f for f in fault.split(",") if f.strip()]

    def _own(self, name: str) -> str:
        module, dot, leaf = name.partition(".")
        return self.own.get(module, module) + dot + leaf

    def _ref(self, name: str) -> str:
        back = {v: k for k, v in self.own.items()}
        module, dot, leaf = name.partition(".")
        return back.get(module, module) + dot + leaf

    def _receive(self, t: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
        """A parameter group by the model's own names, as the underlying port's (reference names), a
        removed bias as zeros; other names are a structure error listing the model's own."""
        got = naming.group(t, prefix)
        ref = {self._ref(k): v for k, v in got.items()}
        # In the model's own order (payloads arrive sorted): layer by layer, weight before bias.
        layers = sorted(ref, key=lambda k: (k.rpartition(".")[0], k.rpartition(".")[2] != "weight"))
        model = [(self._own(k), list(ref[k].shape)) for k in layers if k not in self.no_bias]
        if set(got) != {n for n, _ in model}:
            extra = sorted(set(got) - {n for n, _ in model})
            raise Rejected("structure", f"parameters differ: the port's model has no {extra}", model)
        for k in self.no_bias:
            if k in ref:
                ref[k] = np.zeros_like(ref[k])
        # The model's order: the in-process port reads the input width from the first layer's weight.
        return {k: ref[k] for k in layers}

    def _send(self, group: Any) -> dict[str, np.ndarray]:
        return {self._own(k): v for k, v in dict(group).items() if k not in self.no_bias}

    def handle(self, method: str, args: dict[str, Any], t: dict[str, np.ndarray], rid: int) -> Reply:
        p = self.port

        def need(name: str) -> np.ndarray:
            if name not in t:
                raise Rejected("input", f"{method}: missing tensor '{name}'")
            return t[name]

        if method == "hello":
            return {
                "protocol": PROTOCOL,
                "name": "proxy (harness._burn)",
                "backend": self.backend,
                "faults": self.faults,
                "methods": self.methods,
            }, {}
        if method in self.without:
            raise Rejected("unsupported", f"{method} is not part of this port")
        if method == "shutdown":
            return {}, {}
        if method == "load_csv":
            d = p.load_csv(args["path"], args["label"])
            return {k: d[k] for k in ("feature_names", "dtypes", "label_name")}, {
                "features": d["features"],
                "labels": d["labels"],
            }
        if method == "split":
            train, test = p.split(args["n"], args["test_size"], args["seed"])
            return {}, {"train": train, "test": test}
        if method == "fit_scaler":
            return {}, dict(p.fit_scaler(need("x"), need("train_rows")))
        if method == "transform":
            return {}, {"x": p.transform(need("x"), need("mean"), need("scale"))}
        if method == "prepare":
            d = dict(p.prepare(args["path"], args["label"], args["test_size"], args["seed"]))
            return {"feature_names": d.pop("feature_names")}, d
        if method == "effective_config":
            return {"config": p.effective_config()}, {}
        if method == "roundtrip":
            back, layouts = p.roundtrip(self._receive(t, "params"))
            layouts = {self._own(k): list(v) for k, v in dict(layouts).items() if k not in self.no_bias}
            return {"layouts": layouts}, naming.flatten("params", self._send(back))
        if method == "forward":
            acts = self._send(p.forward(self._receive(t, "params"), need("x")))
            if self.loss_on == "with-logits":  # a model that returns logits has no output sigmoid
                acts.pop("sigmoid", None)
            if self.output_only:  # the model's forward as written: its output alone
                acts = dict(list(acts.items())[-1:])
            return {"layers": list(acts)}, naming.flatten("act", acts)
        if method == "loss":
            value, grad = self.loss(need("p"), need("y"))
            return {"loss": float(value)}, {"grad": grad}
        if method == "backward":
            value, grads = p.backward(self._receive(t, "params"), need("x"), need("y"))
            return {"loss": float(value)}, naming.flatten("grads", self._send(grads))
        if method == "optimizer_step":
            step = args["state_step"]
            state = naming.unflatten_state(t, step) if step else None
            if state:
                state = {k: v if k == "step" else {self._ref(n): a for n, a in v.items()} for k, v in state.items()}
            new, st = p.optimizer_step(self._receive(t, "params"), self._receive(t, "grads"), state)
            st = {k: v if k == "step" else self._send(v) for k, v in dict(st).items()}
            return {"state_step": int(st["step"])}, {
                **naming.flatten("params", self._send(new)),
                **naming.flatten_state(st),
            }
        if method == "train":
            return self.train(args, t, rid, need)
        if method == "evaluate":
            probs, acc = p.evaluate(self._receive(t, "params"), need("x"), need("y"))
            if self.loss_on == "with-logits":  # a logits model predicts logits
                probs = dict(p.forward(self._receive(t, "params"), need("x")))["fc3"]
            return {"accuracy": float(acc)}, {"probs": probs}
        if method == "accuracy":
            outputs = need("probs")
            if self.loss_on == "with-logits":  # its metric reads logits: the sigmoid first
                with np.errstate(over="ignore"):
                    outputs = (1 / (1 + np.exp(-outputs.astype(np.float64)))).astype(np.float32)
            return {"accuracy": float(p.accuracy(outputs, need("y")))}, {}
        raise Rejected("unsupported", f"unknown method '{method}'")

    def loss(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        z, y = z.astype(np.float32), y.astype(np.float32)
        if self.loss_on == "with-logits":
            with np.errstate(over="ignore"):
                value = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
                grad = (1 / (1 + np.exp(-z)) - y) / np.float32(len(z))
            return float(value), grad.astype(np.float32)
        if self.loss_on == "sigmoid":
            with np.errstate(over="ignore"):  # float32 throughout, as a Burn sigmoid: exp(100) is inf, q is 0
                q = (np.float32(1) / (np.float32(1) + np.exp(-z))).astype(np.float32)
            value, grad = self.port.loss(q, y)
            return value, (np.asarray(grad) * ((1 - q) * q)).astype(np.float32)
        return self.port.loss(z, y)

    def train(self, args: dict[str, Any], t: dict[str, np.ndarray], rid: int, need: Any) -> Reply:
        def progress(epoch: int, loss: float) -> None:
            _write({"id": rid, "event": "progress", "epoch": epoch, "loss": loss})

        if self.own_loop and (args["has_init"] or args["has_orders"]):
            raise Rejected("unsupported", "the training loop builds its own model and DataLoader")
        out = dict(
            self.port.train(
                need("x"),
                need("y"),
                params=self._receive(t, "init") if args["has_init"] else None,
                orders=need("orders") if args["has_orders"] else None,
                epochs=args["epochs"],
                seed=args["seed"],
                record_steps=args["record_steps"],
                on_epoch=progress,
            )
        )
        state = {k: v if k == "step" else self._send(v) for k, v in dict(out["state"]).items()}
        tensors = {
            "step_loss": out["step_loss"],
            "epoch_loss": out["epoch_loss"],
            "orders": out["orders"],
            **naming.flatten("init", self._send(out["init"])),
            **naming.flatten("final", self._send(out["final"])),
            **naming.flatten_indexed("epoch_params", [self._send(g) for g in out["epoch_params"]]),
            **naming.flatten_indexed("step_params", [self._send(g) for g in out["step_params"]]),
            **naming.flatten_indexed("step_grads", [self._send(g) for g in out["step_grads"]]),
            **naming.flatten_state(state),
        }
        return {"state_step": int(state["step"])}, tensors


def serve(proxy: Proxy, src: BinaryIO) -> int:
    while True:
        try:
            frame: Frame = read_frame(lambda n: _read_exact(src, n))
        except EOFError:
            return 0
        rid, method, args = frame.header["id"], frame.header["method"], frame.header.get("args", {})
        try:
            result, tensors = proxy.handle(method, args, frame.tensors, rid)
            _write({"id": rid, "ok": True, "result": result}, tensors)
        except Rejected as e:
            error: dict[str, Any] = {"kind": e.kind, "message": str(e)}
            if e.parameters is not None:
                error["parameters"] = [{"name": n, "shape": s} for n, s in e.parameters]
            _write({"id": rid, "ok": False, "error": error})
        except PortRejected as e:  # the extension raises the harness's classes, each with its protocol kind
            err: dict[str, Any] = {"kind": e.kind, "message": str(e)}
            if isinstance(e, PortStructureError):
                err["parameters"] = [{"name": n, "shape": list(s)} for n, s in e.parameters.items()]
            _write({"id": rid, "ok": False, "error": err})
        except (ValueError, KeyError, TypeError, HarnessError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            _write({"id": rid, "ok": False, "error": {"kind": _kind(msg), "message": msg}})
        if method == "shutdown":
            return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", default="flex")
    ap.add_argument("--fault", default="")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--without", default="", help="comma list of methods this port lacks")
    ap.add_argument("--unlisted", action="store_true", help="list every method in hello all the same")
    ap.add_argument("--own-names", default="", help="comma list REF=OWN of the model's own module names")
    ap.add_argument("--no-bias", default="", help="comma list of layers (reference names) without a bias")
    ap.add_argument("--loss-on", default="", choices=["", "with-logits", "sigmoid"], help="loss on logits")
    ap.add_argument("--output-only", action="store_true", help="forward reports the model's output alone")
    ap.add_argument("--own-loop", action="store_true", help="train takes no injected init or batch order")
    a = ap.parse_args()
    without = tuple(m for m in a.without.split(",") if m)
    own = dict(pair.split("=", 1) for pair in a.own_names.split(",") if pair)
    no_bias = tuple(m for m in a.no_bias.split(",") if m)
    try:
        proxy = Proxy(
            a.backend,
            a.fault,
            a.epochs,
            without,
            listed=not a.unlisted,
            own=own,
            no_bias=no_bias,
            loss_on=a.loss_on,
            output_only=a.output_only,
            own_loop=a.own_loop,
        )
    except (ImportError, ValueError, HarnessError) as e:
        sys.stderr.write(f"proxy port: {e}\n")
        return 2
    return serve(proxy, sys.stdin.buffer)


if __name__ == "__main__":
    sys.exit(main())
