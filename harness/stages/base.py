"""A stage, and the shared, lazily computed inputs every stage draws from. What a stage returns is in
harness/results.py (torch-free, for the reports)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from harness import cache as reference_cache
from harness import progress
from harness.cache import Cache
from harness.config import RunConfig
from harness.port import BurnPort, Port
from harness.reference import ensemble
from harness.results import StageResult
from harness.tolerances import REFERENCE_SEEDS, tolerance

if TYPE_CHECKING:
    from harness.data import Prepared
    from harness.reference import train as ref_train
    from harness.reference.reference import Reference

T = TypeVar("T")

# torch, sklearn and the reference load on first use, not with this module: a stage that a warm cache
# answers (config) runs without them.

# RunConfig fields that concern only the port (or how it is judged), never the reference's numbers: not
# part of the reference cache's key.
PORT_SIDE = frozenset(
    {"backend", "fault", "port_cmd", "port_timeout", "require", "rename", "loss_input", "layers", "cache", "tolerances"}
)


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable[[Context], StageResult]


# Lockstep traces record every step of the first epoch (parameters, gradients, optimizer state).
def first_epoch_steps(n_train: int, batch_size: int) -> int:
    return -(-n_train // batch_size)


class Context:
    """Everything stages share, computed once on first use. Data flows one way: the reference's
    inputs are handed to the port stage by stage (teacher forcing)."""

    # The reference side's results: the same for every port run on one configuration.
    REFERENCE_SIDE = (
        "prepared",
        "n_features",
        "reference",
        "forward_params",
        "init",
        "orders",
        "steps_per_epoch",
        "ref_trace",
        "reference_seeds",
        "ensemble",
        "reference_parts",
    )

    def __init__(self, cfg: RunConfig, port: Port | None = None) -> None:
        self.cfg = cfg
        self._port = port
        self._ensemble: ensemble.Pending | ensemble.Done | ensemble.Lazy | None = None
        self._ensemble_cached = False

    def tol(self, key: str):
        return tolerance(key, self.cfg.tolerances)

    def adopt_reference(self, src: Context) -> None:
        """Take the reference-side results `src` has already computed (its cached properties), for a run of
        another port on the same configuration (`faults check`, tests)."""
        for name in self.REFERENCE_SIDE:
            if name in vars(src):
                vars(self)[name] = vars(src)[name]

    @cached_property
    def reference_parts(self) -> dict[str, Any]:
        """Values a stage computes from the reference alone (see `reference_side`), by part name."""
        return {}

    def reference_side(self, part: str, compute: Callable[[], T], kernels: bool = True) -> T:
        """A value a stage computes from the reference alone, never from the port (the train stage's
        reference gradients at the reference's own steps): computed once, then read by every port run on
        this reference (`faults check`) and, with the cache on, by the next run from the cache. Without
        `kernels`, a value no CPU kernel changes, under the key computed without torch (`static_cache`)."""
        parts = self.reference_parts
        if part not in parts:
            cache = self.cache if kernels else self.static_cache
            parts[part] = compute() if cache is None else cache.get(part, compute)
        return parts[part]

    @cached_property
    def port(self) -> Port:
        port = self._own_port()
        if self.cfg.sample_shape or self.cfg.sample_dtype != "float32":
            from harness.samples import ShapedPort

            port = ShapedPort(port, self.cfg.sample_shape, self.cfg.sample_dtype)
        if not self.cfg.rename:
            return port
        from harness.rename import Rename, RenamedPort

        return RenamedPort(port, Rename(self.cfg.rename))

    def _own_port(self) -> Port:
        if self._port is not None:
            return self._port
        if self.cfg.port_cmd:
            from harness.transport import SubprocessPort

            # Built without starting: the first stage that calls it starts the process, and a port that
            # fails to start fails every stage with the same message instead of being restarted.
            return SubprocessPort(self.cfg.port_cmd, self.cfg.port_timeout)
        return BurnPort(self.cfg.backend, self.cfg.fault, self.cfg.epochs)

    def port_identity(self) -> dict[str, Any] | None:
        """What a subprocess port said about itself, if one was started; None for the in-process port."""
        port = self.__dict__.get("port")
        identity = getattr(port, "identity", None)
        return identity() if callable(identity) else None

    def close(self) -> None:
        """Stop a subprocess port this context started (one handed in belongs to its caller) and an
        ensemble still training that no stage read."""
        if self._ensemble is not None:
            self._ensemble.close()
            self._ensemble = None
        close = getattr(self.__dict__.get("port"), "close", None)
        if self._port is None and callable(close):
            close()

    @cached_property
    def prepared(self) -> Prepared:
        """The reference's preparation of the data (pandas, StandardScaler, the sklearn split); from the
        cache when it holds it, so a warm run neither parses the file again nor loads pandas or sklearn."""
        from harness.data import prepare

        return self.reference_side("prepared", lambda: prepare(self.cfg))

    @cached_property
    def n_features(self) -> int:
        return self.prepared.x_train.shape[1]

    @cached_property
    def reference(self) -> Reference:
        """The configured reference model, loss and optimizer; names and shapes come from it."""
        from harness.reference.reference import Reference, n_outputs

        return Reference(self.cfg, self.n_features, n_outputs(self.cfg, self.prepared.table.labels))

    @cached_property
    def init(self) -> dict[str, np.ndarray]:
        return self.reference.init_params(self.cfg.seed)

    @cached_property
    def forward_params(self) -> dict[str, np.ndarray]:
        """The initial parameters with the buffers one training-mode forward of the first batch leaves
        (BatchNorm's running statistics move off their 0 and 1), so that evaluation-mode layers are
        compared on statistics that are not the identity. The initial parameters for a model without."""
        if not self.reference.buffer_names:
            return self.init
        rows = self.orders[0][: self.cfg.batch_size]
        _, out = self.reference.backward(self.init, self.prepared.x_train[rows], self.prepared.y_train[rows])
        return {**self.init, **{k: out[k] for k in self.reference.buffer_names}}

    @cached_property
    def orders(self) -> np.ndarray:
        from harness.reference import train as ref_train

        return ref_train.batch_orders(len(self.prepared.y_train), self.cfg.epochs, self.cfg.seed)

    @cached_property
    def steps_per_epoch(self) -> int:
        return first_epoch_steps(len(self.prepared.y_train), self.cfg.batch_size)

    def _cache(self, kernels: bool) -> Cache | None:
        if not self.cfg.cache:
            return None
        config = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in PORT_SIDE}
        module = self.cfg.reference.partition(":")[0].replace(".", "/") + ".py" if self.cfg.reference else ""
        ref_file = self.cfg.reference_dir / module if self.cfg.reference_dir and module else None
        inputs = reference_cache.key_inputs(self.cfg.data, config, ref_file, kernels=kernels)
        return Cache(reference_cache.cache_dir(), reference_cache.key_of(inputs), inputs)

    @cached_property
    def cache(self) -> Cache | None:
        """The reference cache for this run's inputs (harness/cache.py), or None when caching is off."""
        return self._cache(kernels=True)

    @cached_property
    def static_cache(self) -> Cache | None:
        """The cache of what does not depend on the CPU's float kernels (its key computed without torch)."""
        return self._cache(kernels=False)

    @property
    def reference_hyperparameters(self) -> dict[str, Any]:
        """What the reference uses, in the names of the port's effective_config (the config stage): from
        the cache when it holds them, so that a warm `diff config` never loads torch."""
        return self.reference_side("hyperparameters", lambda: self.reference.hyperparameters(), kernels=False)

    @cached_property
    def ref_trace(self) -> ref_train.Trace:
        p = self.prepared

        def train() -> ref_train.Trace:
            with progress.current().epochs("reference", self.cfg.epochs) as on_epoch:
                return self.reference.train(
                    p.x_train, p.y_train, self.init, self.orders, self.steps_per_epoch, on_epoch
                )

        return train() if self.cache is None else self.cache.get("trace", train)

    def start_ensemble(self) -> None:
        """Start training the reference's other runs (the envelope and the other seeds) in the worker
        process, so that they are ready by the time the train and metrics stages read them."""
        if "ensemble" in self.__dict__ or self._ensemble is not None:
            return
        cached = None if self.cache is None else self.cache.load("ensemble")
        if cached is not None:
            self._ensemble = ensemble.Done(cached)
            self._ensemble_cached = True
            return
        p = self.prepared
        if not self.reference.linear_chain:
            ref, seeds = self.reference, self.reference_seeds
            self._ensemble = ensemble.Lazy(
                lambda: ensemble.train_torch(ref, p.x_train, p.y_train, self.init, self.orders, seeds)
            )
            return
        self._ensemble = ensemble.start(p.x_train, p.y_train, self.init, self.orders, self.cfg, self.reference_seeds)

    @cached_property
    def reference_seeds(self) -> list[int]:
        """The seeds of the reference's own seed-to-seed spread (the metrics stage's yardstick)."""
        return [self.cfg.seed + k for k in range(1, max(REFERENCE_SEEDS, self.cfg.seeds - 1) + 1)]

    @cached_property
    def ensemble(self) -> ensemble.Ensemble:
        self.start_ensemble()
        assert self._ensemble is not None
        if self._ensemble_cached:
            out = self._ensemble.result()
            self._ensemble = None
            return out
        with progress.current().epochs("envelope and reference seeds (second process)", 1) as on_epoch:
            try:
                out = self._ensemble.result()
            finally:
                self._ensemble = None
            on_epoch(1, float("nan"))
        if self.cache is not None:
            self.cache.store("ensemble", out)
        return out

    @property
    def envelope_traces(self) -> list[ensemble.Run]:
        """How far float32 rounding alone carries the reference from itself: the reference in float64
        (the float32 run's distance from it is its rounding noise), the reference with Adam's other
        legitimate float32 arithmetic (harness/reference/adam_f32.py), plus ENVELOPE_DITHERED float32 runs
        from initial weights one ULP away with one-ULP noise in every gradient. Chaotic drift takes off
        at a random epoch, so one run is a noisy yardstick; the harness uses the ensemble's largest drift."""
        return self.ensemble.envelope

    @cached_property
    def port_trace(self) -> dict[str, Any]:
        p = self.prepared
        with progress.current().epochs("port", self.cfg.epochs) as on_epoch:
            return self.port.train(
                p.x_train,
                p.y_train,
                params=self.init,
                orders=self.orders,
                epochs=self.cfg.epochs,
                seed=self.cfg.seed,
                record_steps=self.steps_per_epoch,
                on_epoch=on_epoch,
                dropout=False,
            )
