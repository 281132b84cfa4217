"""What one wire costs: the in-process port's calls through the subprocess transport's encoding
(harness/transport/wire.py and `harness._burn.Port.call`) against a checkout from before it, whose
extension converted every argument and result itself. Interleaved rounds, A then B, each a fresh process
(startup included), medians and ratios from this one run:

- the port's own training as the train stage asks for it (20 epochs from the reference's init in the
  reference's batch order, 83 recorded steps of parameters and gradients: the largest answer of a diff);
- `harness diff all` on the bundled data with a warm reference cache (the port's side and the
  comparisons, what the wire touches), and cold (everything).

The other checkout needs its own built extension in its `harness/` folder:

  git worktree add /tmp/before <commit>
  (cd /tmp/before/rust_bridge && CARGO_TARGET_DIR=$PWD/../../work/main/rust_bridge/target cargo build -p burn-py)
  cp rust_bridge/target/debug/deps/lib_burn.so /tmp/before/harness/_burn.cpython-311-x86_64-linux-gnu.so
  python bench/wire_bench.py --before /tmp/before [--runs 5]
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

ROOT = Path(__file__).resolve().parents[1]

# The train stage's request, timed inside the process (after its imports), in either checkout: both
# have BurnPort.train with these arguments.
PORT_TRAIN = """
import time
from harness.config import RunConfig
from harness.data import prepare
from harness.port import BurnPort
from harness.reference import model, train
cfg = RunConfig()
p = prepare(cfg)
init = model.init_params(p.x_train.shape[1], cfg.seed)
orders = train.batch_orders(len(p.y_train), cfg.epochs, cfg.seed)
port = BurnPort(cfg.backend)
t = time.perf_counter()
out = port.train(p.x_train, p.y_train, params=init, orders=orders, epochs=cfg.epochs, record_steps=83)
assert len(out["step_grads"]) == 83
print(time.perf_counter() - t)
"""


def _env(tree: Path, cache: str) -> dict[str, str]:
    # PYTHONPATH comes before the editable install's path, so `harness` is the tree's own.
    return {**os.environ, "PYTHONPATH": str(tree), "HARNESS_CACHE": cache}


def port_train(tree: Path, cache: str) -> float:
    r = subprocess.run(
        [sys.executable, "-c", PORT_TRAIN], env=_env(tree, cache), capture_output=True, text=True, cwd=tree
    )
    if r.returncode != 0:
        raise SystemExit(f"the port's training failed in {tree}: {r.stderr[-500:]}")
    return float(r.stdout.strip().splitlines()[-1])


def diff_all(tree: Path, cache: str) -> float:
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", "diff", "all"],
        env=_env(tree, cache),
        capture_output=True,
        text=True,
        cwd=tree,
    )
    if r.returncode != 0:
        raise SystemExit(f"harness diff all failed in {tree} (exit {r.returncode}): {r.stdout[-500:]}{r.stderr[-500:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="a checkout from before, with its extension built")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    trees = {"before": a.before.resolve(), "one wire": ROOT}
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        caches = {name: str(Path(tmp) / name.replace(" ", "-")) for name in trees}
        for name, tree in trees.items():  # each checkout's reference cache, filled once, before any timing
            diff_all(tree, caches[name])
        for _ in range(a.runs):
            for name, tree in trees.items():
                times.setdefault((name, "port train"), []).append(port_train(tree, caches[name]))
                times.setdefault((name, "diff all warm"), []).append(diff_all(tree, caches[name]))
                with tempfile.TemporaryDirectory() as cold:
                    times.setdefault((name, "diff all cold"), []).append(diff_all(tree, cold))
    print(f"medians of {a.runs} interleaved rounds (spread: min-max)\n")
    print("| | before | one wire | ratio |")
    print("|---|---|---|---|")
    for what in ("port train", "diff all warm", "diff all cold"):
        b, w = times[("before", what)], times[("one wire", what)]
        mb, mw = statistics.median(b), statistics.median(w)
        print(
            f"| {what} | {mb:.2f} s ({min(b):.2f}-{max(b):.2f}) | {mw:.2f} s ({min(w):.2f}-{max(w):.2f}) | {mw / mb:.3f} |"
        )


if __name__ == "__main__":
    main()
