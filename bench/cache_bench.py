"""What the reference cache buys: `diff all` cold (empty cache) and warm (every reference part from the
cache), against one reference training, on the bundled and the real data; and single-stage commands warm.
Whole commands (`harness ...` as a user types them, startup included), medians of --runs interleaved
rounds, every ratio from this one run. Beside them, what no cache removes: a warm `diff all` in a process
that already imported torch (what `harness watch` and the pytest plugin repeat), and the port's own
training (the train stage's lockstep run; the metrics stage trains it once more from its own init).

  python bench/cache_bench.py [--runs 3] [--data PATH ...]
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

from harness.config import BUNDLED_DATA, REAL_DATA, RunConfig
from harness.data import prepare
from harness.pipeline import run
from harness.port import BurnPort
from harness.reference import model as ref_model
from harness.reference import train as ref_train

HARNESS = [sys.executable, "-m", "harness.cli"]
STAGES = ("config", "forward", "train")


def command(args: list[str], cache: str) -> float:
    t = time.perf_counter()
    r = subprocess.run([*HARNESS, *args], env={**os.environ, "HARNESS_CACHE": cache}, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise SystemExit(f"harness {' '.join(args)} failed: {r.stderr[-500:]}")
    return time.perf_counter() - t


def bench(data: Path, runs: int) -> None:
    cfg = RunConfig(data=data)
    p = prepare(cfg)
    init = ref_model.init_params(p.x_train.shape[1], cfg.seed)
    orders = ref_train.batch_orders(len(p.y_train), cfg.epochs, cfg.seed)
    # The first torch.optim optimizer of a process imports torch._dynamo (seconds): once, before any timing,
    # so that the first reference training is timed like the others.
    ref_train.train(p.x_train, p.y_train, init, orders[:1], cfg.with_(epochs=1))
    one, cold, warm, in_process, port = [], [], [], [], []
    single: dict[str, list[float]] = {s: [] for s in STAGES}
    for _ in range(runs):  # interleaved, so drift in the machine's load hits all alike
        t = time.perf_counter()
        ref_train.train(p.x_train, p.y_train, init, orders, cfg)
        one.append(time.perf_counter() - t)
        t = time.perf_counter()
        BurnPort(cfg.backend).train(p.x_train, p.y_train, params=init, orders=orders, epochs=cfg.epochs)
        port.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as cache:
            cold.append(command(["diff", "all", "--data", str(data)], cache))
            warm.append(command(["diff", "all", "--data", str(data)], cache))
            for s in STAGES:
                single[s].append(command(["diff", s, "--data", str(data)], cache))
            os.environ["HARNESS_CACHE"] = cache
            try:
                t = time.perf_counter()
                run(RunConfig(data=data, cache=True))
                in_process.append(time.perf_counter() - t)
            finally:
                del os.environ["HARNESS_CACHE"]
    ref = statistics.median(one)
    print(f"\n{data} ({len(p.y_train)} training rows), medians of {runs}:")
    print(f"  one reference training (in process)  {ref:6.2f} s")
    rows = [("diff all, cold cache", cold), ("diff all, warm cache", warm)]
    rows += [(f"diff {s}, warm cache", v) for s, v in single.items()]
    rows += [("diff all, warm cache, in process", in_process), ("the port's own training", port)]
    for name, times in rows:
        m = statistics.median(times)
        print(f"  {name:<36} {m:6.2f} s  {m / ref:5.2f} x one reference training")
    print(f"  warm / cold diff all: {statistics.median(warm) / statistics.median(cold):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", type=Path, action="append")
    a = ap.parse_args()
    for data in a.data or [BUNDLED_DATA, *([REAL_DATA] if REAL_DATA.is_file() else [])]:
        bench(data, a.runs)


if __name__ == "__main__":
    main()
