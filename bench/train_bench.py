"""Training time of both sides on the same data, the cost of a diff and of the subprocess transport,
and the extension's cold and warm build.

Prints medians over --runs runs and the ratios, all measured in this one run.
  python bench/train_bench.py [--data PATH] [--runs 5] [--diff] [--transport] [--build]
--diff times `diff all` against one reference training on the bundled and the real data (and what the
batched envelope and its second process each bought); --transport times `diff all` in-process against
the same diff over the subprocess transport (`burn-port serve`), and the port's training through each;
--build also times a cold build (rust_bridge/target removed first: slow, minutes) and a warm rebuild.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from harness.config import BUNDLED_DATA, REAL_DATA, RunConfig
from harness.data import prepare
from harness.port import BurnPort
from harness.reference import model as ref_model
from harness.reference import train as ref_train

ROOT = Path(__file__).resolve().parent.parent


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=BUNDLED_DATA)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--build", action="store_true")
    ap.add_argument("--diff", action="store_true", help="also time `diff all` against one reference training")
    ap.add_argument(
        "--diff-data", type=Path, action="append", help="datasets for --diff (default: bundled, and the real file)"
    )
    ap.add_argument("--transport", action="store_true", help="also time `diff all` in-process against subprocess")
    a = ap.parse_args()
    cfg = RunConfig(data=a.data)
    p = prepare(cfg)
    init = ref_model.init_params(p.x_train.shape[1], 0)
    orders = ref_train.batch_orders(len(p.y_train), cfg.epochs, 0)
    steps = cfg.epochs * -(-len(p.y_train) // cfg.batch_size)
    print(
        f"data {a.data.name}: {len(p.y_train)} training rows, {steps} steps (20 epochs, batch 32); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads by default"
    )
    results: dict[str, list[float]] = {"torch": [], "burn-flex": [], "burn-ndarray": []}
    ports = {"burn-flex": BurnPort("flex"), "burn-ndarray": BurnPort("ndarray")}
    for _ in range(a.runs):  # interleaved, so drift in machine load hits every side alike
        results["torch"].append(timed(lambda: ref_train.train(p.x_train, p.y_train, init, orders, cfg)))
        for name, port in ports.items():
            results[name].append(
                timed(lambda port=port: port.train(p.x_train, p.y_train, params=init, orders=orders, epochs=cfg.epochs))
            )
    med = {k: statistics.median(v) for k, v in results.items()}
    for k, v in med.items():
        print(f"{k:13s} median {v:7.3f} s  ({1e3 * v / steps:.3f} ms/step)  runs {[round(x, 3) for x in results[k]]}")
    for k in ports:
        print(f"ratio {k}/torch: {med[k] / med['torch']:.3f}")
    print(f"ratio burn-ndarray/burn-flex: {med['burn-ndarray'] / med['burn-flex']:.3f}")
    if a.diff:
        for data in a.diff_data or [BUNDLED_DATA, *([REAL_DATA] if REAL_DATA.is_file() else [])]:
            diff_costs(cfg.with_(data=data), a.runs)
    if a.transport:
        from harness.pipeline import run
        from harness.transport import SubprocessPort

        serve = str(ROOT / "rust_bridge" / "target" / "debug" / "burn-port") + " serve"
        sub_cfg = cfg.with_(port_cmd=serve)
        t_in = [timed(lambda: run(cfg)) for _ in range(a.runs)]
        t_sub = [timed(lambda: run(sub_cfg)) for _ in range(a.runs)]
        m_in, m_sub = statistics.median(t_in), statistics.median(t_sub)
        print(f"diff all in-process median {m_in:.2f} s, subprocess median {m_sub:.2f} s, ratio {m_sub / m_in:.3f}")
        sub = SubprocessPort(serve, 600.0)
        inproc = BurnPort("flex")
        tr_in = [
            timed(lambda: inproc.train(p.x_train, p.y_train, params=init, orders=orders, epochs=cfg.epochs))
            for _ in range(a.runs)
        ]
        tr_sub = [
            timed(lambda: sub.train(p.x_train, p.y_train, params=init, orders=orders, epochs=cfg.epochs))
            for _ in range(a.runs)
        ]
        sub.close()
        print(
            f"port training in-process median {statistics.median(tr_in):.3f} s, subprocess "
            f"{statistics.median(tr_sub):.3f} s, ratio {statistics.median(tr_sub) / statistics.median(tr_in):.3f}"
        )
    if a.build:
        venv_bin = Path(sys.executable).parent
        env_cmd = [str(venv_bin / "maturin"), "develop", "-q"]
        shutil.rmtree(ROOT / "rust_bridge" / "target", ignore_errors=True)
        cold = timed(lambda: subprocess.run(env_cmd, cwd=ROOT, check=True, capture_output=True))
        (ROOT / "rust_bridge" / "crates" / "burn-py" / "src" / "lib.rs").touch()
        warm = timed(lambda: subprocess.run(env_cmd, cwd=ROOT, check=True, capture_output=True))
        print(f"extension build: cold {cold:.1f} s, warm (lib.rs touched) {warm:.1f} s")


def diff_costs(cfg: RunConfig, runs: int) -> None:
    """`diff all` against one reference training on one dataset (medians of `runs` interleaved pairs),
    and what each speed-up bought: the batched envelope against the envelope as separate nn.Module
    runs, and the second process against training the ensemble in this one."""
    from harness.pipeline import run
    from harness.reference import ensemble
    from harness.tolerances import ENVELOPE_DITHERED, REFERENCE_SEEDS

    p = prepare(cfg)
    init = ref_model.init_params(p.x_train.shape[1], cfg.seed)
    orders = ref_train.batch_orders(len(p.y_train), cfg.epochs, cfg.seed)
    seeds = [cfg.seed + k for k in range(1, REFERENCE_SEEDS + 1)]
    print(f"\n{cfg.data}: {len(p.y_train)} training rows")
    ones, wholes = [], []
    for _ in range(runs):  # interleaved, so drift in machine load hits both alike
        ones.append(timed(lambda: ref_train.train(p.x_train, p.y_train, init, orders, cfg)))
        wholes.append(timed(lambda: run(cfg)))
    one, whole = statistics.median(ones), statistics.median(wholes)
    ensemble.IN_PROCESS = True
    try:
        serial = timed(lambda: run(cfg))
    finally:
        ensemble.IN_PROCESS = False
    batched = timed(lambda: ensemble.train_ensemble(p.x_train, p.y_train, init, orders, cfg, seeds))
    nudged = ref_model.nudge(init)

    def separate() -> None:  # the envelope as it was: one nn.Module loop per member, no seed runs
        ref_train.train(p.x_train, p.y_train, init, orders, cfg, float64=True)
        ref_train.train(p.x_train, p.y_train, init, orders, cfg, float32_adam=True)
        for k in range(2):
            ref_train.train(p.x_train, p.y_train, nudged, orders, cfg, dither_seed=k)

    old_envelope = timed(separate)
    members = 2 + ENVELOPE_DITHERED + REFERENCE_SEEDS
    print(f"one reference training median {one:.2f} s  runs {[round(v, 2) for v in ones]}")
    print(
        f"envelope as 4 separate nn.Module runs {old_envelope:.2f} s ({old_envelope / one:.2f} x one training); "
        f"batched ensemble of {members} runs (envelope + {REFERENCE_SEEDS} seeds) {batched:.2f} s "
        f"({batched / one:.2f} x)"
    )
    print(f"diff all with the ensemble in this process {serial:.2f} s ({serial / one:.2f} x one training)")
    print(
        f"diff all with the ensemble in a second process median {whole:.2f} s  runs {[round(v, 2) for v in wholes]}"
        f": ratio diff all / one training {whole / one:.2f}"
    )


if __name__ == "__main__":
    main()
