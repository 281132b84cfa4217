"""The user's original check scripts (test_scaler.py, test_bce_loss.py, test-label-percentage), for
either framework, printing the same report format."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness import csvcheck
from harness.config import RunConfig
from harness.data import prepare
from harness.port import BurnPort
from harness.reference import train as ref_train

Out = Callable[[str], None]


def _prepared(cfg: RunConfig, framework: str) -> dict[str, np.ndarray]:
    """Each side's own preparation; `x_train64` is the float64 scaled training set, as the user's
    scripts print it (the scaler's output before the float32 cast)."""
    if framework == "torch":
        p = prepare(cfg)
        x64 = (p.table.features[p.train_idx] - p.mean) / p.scale
        return {
            "x_train": p.x_train,
            "x_test": p.x_test,
            "y_train": p.y_train,
            "y_test": p.y_test,
            "names": np.array(p.table.feature_names),
            "x_train64": x64,
        }
    # The port never sees a file the harness's rules reject (harness/csvcheck.py).
    csvcheck.read(cfg.data, cfg.label)
    port = BurnPort(cfg.backend)
    d = port.prepare(cfg.data, cfg.label, cfg.test_size, cfg.split_seed)
    features = port.load_csv(cfg.data, cfg.label)["features"]
    x64 = (features[d["train_idx"]] - d["mean"]) / d["scale"]
    return {**d, "names": np.array(d["feature_names"]), "x_train64": x64}


def check_data(cfg: RunConfig, framework: str, out: Out) -> None:
    d = _prepared(cfg, framework)
    side = "Python" if framework == "torch" else "Rust"
    x = d["x_train64"]
    out(f"=== Training Data Check ({side}) ===")
    out("\nDataset sizes:")
    out(f"Train: {len(d['x_train'])} Test: {len(d['x_test'])}")
    out("\nFeature statistics (first 3):")
    for i in range(min(3, x.shape[1])):
        out(f"\nFeature {i} ({d['names'][i]}):")
        out(f"Mean:   {x[:, i].mean():.4f}")
        out(f"StdDev: {x[:, i].std():.4f}")
        out(f"Min:    {x[:, i].min():.4f}")
        out(f"Max:    {x[:, i].max():.4f}")
    out("\nSample values (first 3 samples, first 3 features):")
    for i in range(min(3, len(x))):
        out(f"Sample {i}: [{', '.join(f'{v:.8f}' for v in x[i, :3])}]")


BCE_CASES = [
    ("Perfect predictions", [1.0, 0.0, 1.0, 0.0]),
    ("Wrong predictions", [0.0, 1.0, 0.0, 1.0]),
    ("Uncertain predictions", [0.5, 0.5, 0.5, 0.5]),
]


def check_bce(cfg: RunConfig, framework: str, out: Out) -> None:
    targets = np.array([1, 0, 1, 0], dtype=np.float32)
    port = BurnPort(cfg.backend, cfg.fault) if framework == "burn" else None
    for i, (name, preds) in enumerate(BCE_CASES, start=1):
        p = np.array(preds, dtype=np.float32)
        loss = ref_train.loss_and_grad(p, targets)[0] if port is None else port.loss(p, targets)[0]
        out(f"\nTest Case {i} - {name}:")
        out(f"Predictions: tensor([{', '.join(f'{v:.4f}' for v in p)}])")
        out(f"Targets:     tensor([{', '.join(f'{v:.4f}' for v in targets)}])")
        out(f"Loss:        {loss:.8f}")


def check_labels(cfg: RunConfig, framework: str, out: Out) -> None:
    d = _prepared(cfg, framework)
    for name, y in (("Train", d["y_train"]), ("Test", d["y_test"])):
        total = len(y)
        ones = int((y == 1).sum())
        zeroes = total - ones
        out(
            f"{name} distribution: total={total}, zeroes={zeroes} ({100 * zeroes / total:.1f}%), "
            f"ones={ones} ({100 * ones / total:.1f}%)"
        )
