"""What a `diff all` costs for each configured model, against one training of its reference: the issue-10
rule is `diff all` at most 2x one reference training. Whole commands (`harness diff all --config ...`,
startup included), cold (an empty reference cache) and warm, medians of --runs interleaved rounds, every
ratio from this one run.

  python bench/models_bench.py [--runs 3] [--config examples/digits-cnn/harness.toml ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.config import resolve
from harness.stages.base import Context

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    ROOT / "examples" / name / "harness.toml"
    for name in ("digits", "digits-cnn", "sequence", "transformer", "diabetes")
]
HARNESS = [sys.executable, "-m", "harness.cli"]


def command(args: list[str], cache: str) -> float:
    t = time.perf_counter()
    r = subprocess.run([*HARNESS, *args], env={**os.environ, "HARNESS_CACHE": cache}, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"harness {' '.join(args)} exited with {r.returncode}: {(r.stdout + r.stderr)[-800:]}")
    return time.perf_counter() - t


def one_training(config: Path) -> float:
    ctx = Context(resolve(config))
    p, ref, init, orders = ctx.prepared, ctx.reference, ctx.init, ctx.orders
    t = time.perf_counter()
    ref.train(p.x_train, p.y_train, init, orders)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--config", type=Path, action="append")
    a = ap.parse_args()
    configs = a.config or CONFIGS
    times: dict[Path, dict[str, list[float]]] = {c: {"train": [], "cold": [], "warm": []} for c in configs}
    # The first torch.optim optimizer of a process imports torch._dynamo (seconds): once, before any timing.
    one_training(configs[0])
    for _ in range(a.runs):  # interleaved, so drift in the machine's load hits all alike
        for c in configs:
            times[c]["train"].append(one_training(c))
            with tempfile.TemporaryDirectory() as cache:
                times[c]["cold"].append(command(["diff", "all", "--config", str(c)], cache))
                times[c]["warm"].append(command(["diff", "all", "--config", str(c)], cache))
    print(f"medians of {a.runs} interleaved runs")
    for c, t in times.items():
        m = {k: statistics.median(v) for k, v in t.items()}
        name = c.parent.name
        print(
            f"{name:12s} reference training {m['train']:6.2f} s | diff all cold {m['cold']:6.2f} s "
            f"({m['cold'] / m['train']:.2f}x) | warm {m['warm']:6.2f} s ({m['warm'] / m['train']:.2f}x)"
        )


if __name__ == "__main__":
    main()
