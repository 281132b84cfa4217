"""The reference's other runs: the float32 envelope and the other seeds, trained in a second process.

The train stage judges the port against how far the reference drifts from itself (the envelope: float64,
Burn's Adam arithmetic, one-ULP-dithered float32 runs); the metrics stage judges independent runs against
the reference's own seed-to-seed spread. None of these runs depends on the port, so they are trained
batched (harness/reference/batched.py) in a worker process while this one trains the reference and
drives the port: on two cores the whole diff costs little more than the reference training itself.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.reference import batched
from harness.reference.batched import Member
from harness.reference.structure import Params, Trace, nudge
from harness.specs import OPTIMIZERS
from harness.tolerances import ENVELOPE_DITHERED

if TYPE_CHECKING:
    from harness.reference.reference import Reference

ENVELOPE_DITHER_SEED = 7919


@dataclass
class Run:
    """One run's record, as the stages read it."""

    step_loss: np.ndarray
    epoch_loss: np.ndarray
    epoch_params: list[Params]
    label: str

    @property
    def final(self) -> Params:
        return self.epoch_params[-1]


@dataclass
class Ensemble:
    envelope: list[Run]
    # Final parameters of the reference trained from seeds seed+1 .. seed+REFERENCE_SEEDS, own init and order.
    seeds: dict[int, Params]


def seed_runs(n_features: int, n: int, epochs: int, seeds: list[int]) -> dict[int, tuple[Params, np.ndarray]]:
    """Each seed's initial weights and batch orders, as the user's script draws them (torch's generator,
    so computed here, not in the worker, which does not import torch)."""
    from harness.reference import model as ref_model
    from harness.reference import train as ref_train

    return {s: (ref_model.init_params(n_features, s), ref_train.batch_orders(n, epochs, s)) for s in seeds}


def train_ensemble(
    x: np.ndarray, y: np.ndarray, init: Params, orders: np.ndarray, cfg: RunConfig, seeds: list[int]
) -> Ensemble:
    """Every run, in this process."""
    return _train(x, y, init, orders, cfg, seed_runs(x.shape[1], len(y), len(orders), seeds))


def _train(
    x: np.ndarray,
    y: np.ndarray,
    init: Params,
    orders: np.ndarray,
    cfg: RunConfig,
    seeds: dict[int, tuple[Params, np.ndarray]],
) -> Ensemble:
    """Every run in two batches: float64 (one member) and float32 (Burn's Adam, the dithered runs, the
    other seeds)."""
    b64 = batched.train(x, y, [Member(init, orders)], cfg, float64=True)
    nudged = nudge(init)
    members = [Member(init, orders, float32_adam=True)]
    # Dithered members alternate torch's Adam arithmetic and Burn's: a port may use either.
    members += [Member(nudged, orders, dither=True, float32_adam=k % 2 == 1) for k in range(ENVELOPE_DITHERED)]
    members += [Member(*seeds[s]) for s in sorted(seeds)]
    b32 = batched.train(x, y, members, cfg, dither_seed=ENVELOPE_DITHER_SEED + cfg.seed)

    def run(trace: batched.BatchedTrace, m: int, label: str) -> Run:
        return Run(trace.step_loss[m], trace.epoch_loss[m], trace.epoch_params[m], label)

    envelope = [run(b64, 0, "float64"), run(b32, 0, "float32 Adam")]
    envelope += [
        run(b32, 1 + k, f"dithered {k + 1}" + (" (float32 Adam)" if k % 2 else "")) for k in range(ENVELOPE_DITHERED)
    ]
    first_seed = 1 + ENVELOPE_DITHERED
    return Ensemble(envelope, {s: b32.final(first_seed + i) for i, s in enumerate(sorted(seeds))})


# What the worker needs of the run's configuration (the rest is the data, the initialization and orders).
WORKER_CONFIG = ("batch_size", "lr", "beta1", "beta2", "eps", "weight_decay", "seed")


class Pending:
    """The ensemble being trained by `python -m harness.reference.ensemble` in a second process.

    A plain subprocess with .npz files (allow_pickle=False) in and out, not multiprocessing: spawning
    re-imports the caller's __main__, which breaks any script that calls the harness without a
    `if __name__ == "__main__"` guard, and forking a process that has run torch can deadlock."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, init: Params, orders: np.ndarray, cfg: RunConfig, seeds: list[int]
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="harness-ensemble-")
        d = Path(self._dir.name)
        self._out = d / "out.npz"
        conf = {k: getattr(cfg, k) for k in WORKER_CONFIG}
        runs = seed_runs(x.shape[1], len(y), len(orders), seeds)
        np.savez(
            d / "in.npz",
            x=x,
            y=y,
            orders=orders,
            seeds=np.asarray(seeds, dtype=np.int64),
            config=np.asarray(json.dumps(conf)),
            **{f"init/{k}": v for k, v in init.items()},
            **{f"seed{s}/orders": o for s, (_, o) in runs.items()},
            **{f"seed{s}/init/{k}": v for s, (p, _) in runs.items() for k, v in p.items()},
        )
        # One BLAS thread: the two cores are this process's and the worker's.
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "harness.reference.ensemble", str(d / "in.npz"), str(self._out)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _RUNNING.add(self)

    def result(self) -> Ensemble:
        try:
            _, err = self._proc.communicate()
            if self._proc.returncode != 0:
                lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
                raise HarnessError(
                    f"the reference's envelope runs failed in the worker process (exit {self._proc.returncode})"
                    + (f": {lines[-1]}" if lines else "")
                )
            return _load(self._out)
        finally:
            self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        _RUNNING.discard(self)
        self._dir.cleanup()


_RUNNING: set[Pending] = set()


@atexit.register
def _stop_all() -> None:
    for pending in list(_RUNNING):
        pending.close()


class Done:
    """An ensemble trained in this process (IN_PROCESS): the same interface as Pending."""

    def __init__(self, ens: Ensemble) -> None:
        self._ens = ens

    def result(self) -> Ensemble:
        return self._ens

    def close(self) -> None:
        pass


class Lazy:
    """Any other model's ensemble (harness/reference/reference.py), trained with torch in this process
    when a stage first reads it: the batched trainer models only the classifier's linear chain."""

    def __init__(self, train: Callable[[], Ensemble]) -> None:
        self._train = train

    def result(self) -> Ensemble:
        return self._train()

    def close(self) -> None:
        pass


def train_torch(
    reference: Reference, x: np.ndarray, y: np.ndarray, init: Params, orders: np.ndarray, seeds: list[int]
) -> Ensemble:
    """The same members as the batched ensemble, trained by the reference's own loop: float64, Burn's Adam or
    AdamW arithmetic (harness/reference/adam_f32.py), ENVELOPE_DITHERED dithered runs from weights one ULP
    away (lockstep, dropout off), and the other seeds' own runs (own init, own order, dropout on as in the
    user's training).

    The dithered runs move each gradient element by one ULP of its tensor's largest element, not of its
    own: measured on the digits model (seed 1), the faithful port's gradient at fc2.weight[29, 3], itself
    4.3e-8, differed from the reference's by 3e-9 (half a ULP of that tensor's largest gradient), which
    AdamW, with eps 1e-8, turned into a 1e-5 parameter difference after one step. The batched ensemble
    of the classifier keeps its per-element dither (its verdicts were measured with it)."""
    from harness.reference import train as ref_train

    cfg = reference.cfg
    envelope = [Run(*_record(reference.train(x, y, init, orders, float64=True)), "float64")]
    adam = OPTIMIZERS[cfg.optimizer].adaptive
    if adam:
        t = reference.train(x, y, init, orders, float32_adam=True)
        envelope.append(Run(*_record(t), f"float32 {cfg.optimizer}"))
    nudged = nudge(init)
    for k in range(ENVELOPE_DITHERED):
        burn = adam and k % 2 == 1
        t = reference.train(
            x, y, nudged, orders, dither_seed=ENVELOPE_DITHER_SEED + cfg.seed + k, float32_adam=burn, dither_tensor=True
        )
        envelope.append(Run(*_record(t), f"dithered {k + 1}" + (f" (float32 {cfg.optimizer})" if burn else "")))
    finals = {}
    for s in seeds:
        own = ref_train.batch_orders(len(y), len(orders), s)
        finals[s] = reference.train(x, y, reference.init_params(s), own, dropout=True, seed=s).final
    return Ensemble(envelope, finals)


def _record(t: Trace) -> tuple[np.ndarray, np.ndarray, list[Params]]:
    return t.step_loss.astype(np.float64), t.epoch_loss, t.epoch_params


# Train the ensemble in this process, one step after the other (bench/train_bench.py measures what the
# second process buys with it).
IN_PROCESS = False


def start(
    x: np.ndarray, y: np.ndarray, init: Params, orders: np.ndarray, cfg: RunConfig, seeds: list[int]
) -> Pending | Done:
    if IN_PROCESS:
        return Done(train_ensemble(x, y, init, orders, cfg, seeds))
    return Pending(x, y, init, orders, cfg, seeds)


def _save(ens: Ensemble, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {"seeds": np.asarray(sorted(ens.seeds), dtype=np.int64)}
    for i, run in enumerate(ens.envelope):
        arrays[f"env{i}/label"] = np.asarray(run.label)
        arrays[f"env{i}/step_loss"] = run.step_loss
        arrays[f"env{i}/epoch_loss"] = run.epoch_loss
        for e, params in enumerate(run.epoch_params):
            arrays.update({f"env{i}/epoch{e}/{k}": v for k, v in params.items()})
    for s, params in ens.seeds.items():
        arrays.update({f"seed{s}/{k}": v for k, v in params.items()})
    np.savez(path, **arrays)


def _load(path: Path) -> Ensemble:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)

        def params(prefix: str) -> Params:
            return {k[len(prefix) :]: z[k] for k in keys if k.startswith(prefix)}

        envelope = []
        i = 0
        while f"env{i}/label" in keys:
            epochs = len({k.split("/")[1] for k in keys if k.startswith(f"env{i}/epoch") and k.count("/") == 2})
            envelope.append(
                Run(
                    z[f"env{i}/step_loss"],
                    z[f"env{i}/epoch_loss"],
                    [params(f"env{i}/epoch{e}/") for e in range(epochs)],
                    str(z[f"env{i}/label"]),
                )
            )
            i += 1
        return Ensemble(envelope, {int(s): params(f"seed{int(s)}/") for s in z["seeds"]})


def _main(src: str, dst: str) -> None:
    with np.load(src, allow_pickle=False) as z:
        conf = json.loads(str(z["config"]))

        def params(prefix: str) -> Params:
            return {k[len(prefix) :]: z[k] for k in z.files if k.startswith(prefix)}

        seeds = {int(s): (params(f"seed{int(s)}/init/"), z[f"seed{int(s)}/orders"]) for s in z["seeds"]}
        ens = _train(z["x"], z["y"], params("init/"), z["orders"], RunConfig(**conf), seeds)
    _save(ens, Path(dst))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
