"""The reference cache (harness/cache.py): a second run with the same inputs reads the reference's
results instead of training and reports the same; any change to an input misses; a damaged entry is
recomputed, never trusted; two processes writing and reading one key at once never see a torn entry."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness import cache
from harness.cache import Cache
from harness.config import BUNDLED_DATA, RunConfig
from harness.pipeline import run_with
from harness.reference.ensemble import Ensemble, Run
from harness.reference.structure import Trace
from harness.report.files import report_json
from harness.stages.base import Context


def _trace() -> Trace:
    rng = np.random.default_rng(0)
    p = {"fc.weight": rng.normal(size=(2, 3)).astype(np.float32), "fc.bias": np.zeros(2, np.float32)}
    state = {"step": 3, "exp_avg": {k: v * 0.1 for k, v in p.items()}}
    return Trace(
        np.arange(4, dtype=np.float32),
        np.array([0.5, 0.25]),
        p,
        p,
        [p, p],
        [p],
        [p],
        [state],
        [state],
        np.arange(6).reshape(2, 3),
        np.array([1.5, 2.0]),
    )


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b and type(a) is type(b)


def test_entries_come_back_as_they_went_in(tmp_path: Path) -> None:
    c = Cache(tmp_path, "k", {"x": "1"})
    t = _trace()
    ens = Ensemble([Run(np.ones(3, np.float32), np.ones(2), [t.init], "float64")], {7: t.init, 8: t.final})
    assert c.load("trace") is None and c.status["trace"] == "miss"
    c.store("trace", t)
    c.store("ensemble", ens)
    again = Cache(tmp_path, "k", {"x": "1"})
    assert _same(again.load("trace"), t) and _same(again.load("ensemble"), ens)
    assert again.status == {"trace": "hit", "ensemble": "hit"}


def test_a_damaged_or_foreign_entry_is_recomputed_not_trusted(tmp_path: Path) -> None:
    c = Cache(tmp_path, "k", {"x": "1"})
    c.store("trace", _trace())
    data = tmp_path / "k.trace.safetensors"
    raw = bytearray(data.read_bytes())
    raw[-5] ^= 0xFF  # one byte of one array
    data.write_bytes(bytes(raw))
    calls = []
    got = c.get("trace", lambda: calls.append(1) or _trace())
    assert calls == [1] and c.status["trace"] == "stale: its content does not match its hash"
    assert _same(got, _trace())
    assert Cache(tmp_path, "k", {"x": "1"}).load("trace") is not None  # rewritten whole
    # Truncated, and an index written for other inputs under the same name.
    data.write_bytes(data.read_bytes()[:100])
    assert c.load("trace") is None and c.status["trace"].startswith("stale")
    c.store("trace", _trace())
    other = Cache(tmp_path, "k", {"x": "2"})
    assert other.load("trace") is None and other.status["trace"] == "stale: written for other inputs"


def test_every_input_is_in_the_key(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,label\n1,0\n2,1\n")
    base = cache.key_inputs(data, {"lr": 0.001})
    keys = {cache.key_of(base)}
    data.write_text("a,label\n1,0\n2,0\n")  # one byte of the data
    keys.add(cache.key_of(cache.key_inputs(data, {"lr": 0.001})))
    keys.add(cache.key_of(cache.key_inputs(data, {"lr": 0.002})))  # one config value
    module = tmp_path / "model.py"
    module.write_text("def build(n, o): ...\n")
    keys.add(cache.key_of(cache.key_inputs(data, {"lr": 0.001}, module)))
    module.write_text("def build(n, o): ...  # changed\n")  # the reference module's source
    keys.add(cache.key_of(cache.key_inputs(data, {"lr": 0.001}, module)))
    versions = [(name, "0.0") for name in ("torch", "numpy", "sklearn", "pandas", "harness")]
    for field, value in (*versions, ("kernels", "{}"), ("source", "x")):
        keys.add(cache.key_of({**cache.key_inputs(data, {"lr": 0.001}), field: value}))
    assert len(keys) == 12
    # The harness's own source: any file's content changes the hash.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("x = 1\n")
    before = cache.source_hash(src)
    (src / "a.py").write_text("x = 2\n")
    assert cache.source_hash(src) != before


def test_two_processes_on_one_key_never_see_a_torn_entry(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        import numpy as np
        from harness.cache import Cache
        from harness.reference.structure import Trace
        p = {{"w": np.arange(200000, dtype=np.float32)}}
        t = Trace(np.arange(9, dtype=np.float32), np.ones(3), p, p, [p, p, p])
        for i in range(30):
            c = Cache(__import__("pathlib").Path({str(tmp_path)!r}), "k", {{"x": "1"}})
            got = c.get("trace", lambda: t)
            assert np.array_equal(got.epoch_params[2]["w"], p["w"]), "torn"
            assert c.status["trace"] in ("hit", "miss") or c.status["trace"].startswith("stale"), c.status
        print("ok")
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == b"ok", err.decode()[-2000:]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_second_run_reads_the_reference_and_reports_the_same() -> None:
    cfg = RunConfig(data=BUNDLED_DATA, epochs=3, cache=True)
    reports = []
    for _ in range(2):
        ctx = Context(cfg)
        try:
            reports.append(run_with(ctx, ["train", "metrics"]))
        finally:
            ctx.close()
    first, second = (report_json(r) for r in reports)
    parts = ("prepared", "trace", "ensemble", "resync")
    assert first["cache"]["parts"] == dict.fromkeys(parts, "miss")
    assert second["cache"]["parts"] == dict.fromkeys(parts, "hit")

    def verdicts(d: dict) -> str:
        return json.dumps([{k: v for k, v in s.items() if k != "seconds"} for s in d["stages"]], sort_keys=True)

    assert verdicts(first) == verdicts(second)
    # Off, nothing is read or written.
    ctx = Context(RunConfig(data=BUNDLED_DATA, epochs=3))
    try:
        assert report_json(run_with(ctx, ["train"]))["cache"] is None
    finally:
        ctx.close()


def test_cache_info_and_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    Cache(tmp_path, "k", {}).store("trace", _trace())
    assert cache.info() == {"dir": str(tmp_path), "keys": 1, "entries": 1, "bytes": cache.info()["bytes"]}
    assert cache.clear() == 2 and cache.info()["entries"] == 0


def test_only_the_most_recent_keys_are_kept(tmp_path: Path) -> None:
    import os

    for i in range(5):
        Cache(tmp_path, f"k{i}", {}).store("trace", _trace())
        for p in tmp_path.glob(f"k{i}.*"):
            os.utime(p, (1000.0 + i, 1000.0 + i))
    assert cache.evict(tmp_path, 2) == ["k2", "k1", "k0"]
    assert sorted({p.name.split(".")[0] for p in tmp_path.iterdir()}) == ["k3", "k4"]
    # A store keeps its own key however old the others make it look.
    assert cache.evict(tmp_path, 0, protect="k3") == ["k4"]


def test_the_static_key_leaves_out_the_kernels_and_reads_torchs_version_without_importing_it(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,label\n1,0\n2,1\n")
    full, static = cache.key_inputs(data, {"lr": 0.001}), cache.key_inputs(data, {"lr": 0.001}, kernels=False)
    assert "kernels" in full and "kernels" not in static
    assert {k: v for k, v in full.items() if k != "kernels"} == static
    code = (
        "import sys\n"
        "from harness import cache\n"
        "v = cache.torch_version()\n"
        "assert 'torch' not in sys.modules\n"
        "import torch\n"
        "assert v == torch.__version__, (v, torch.__version__)\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.stdout.strip() == "ok", r.stderr[-2000:]


def test_a_warm_config_stage_answers_without_torch_sklearn_or_the_reference(tmp_path: Path) -> None:
    """`harness diff config` reads the reference's hyperparameters from the cache: a second run loads none
    of what computing them needs, and says the same."""
    env = {**__import__("os").environ, "HARNESS_CACHE": str(tmp_path)}
    code = (
        "import json, sys\n"
        "from harness.cli import main\n"
        "sys.argv = ['harness', 'diff', 'config', '--json', sys.argv[1]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "loaded = ('torch', 'sklearn', 'scipy', 'harness.reference.reference', 'harness.data')\n"
        "print(json.dumps([code, sorted(m for m in loaded if m in sys.modules)]))\n"
    )
    outs = []
    for k in range(2):
        path = tmp_path / f"r{k}.json"
        r = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=False, timeout=600
        )
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append((json.loads(r.stdout.strip().splitlines()[-1]), json.loads(path.read_text())))
    (cold, cold_report), (warm, warm_report) = outs
    assert cold[0] == 0 and "torch" in cold[1], cold  # the control: computing them needs torch
    assert warm == [0, []], warm
    assert cold_report["cache"]["parts"] == {"hyperparameters": "miss", "prepared": "miss"}
    assert warm_report["cache"]["parts"] == {"hyperparameters": "hit"}
    strip = [{k: v for k, v in s.items() if k != "seconds"} for s in cold_report["stages"]]
    assert strip == [{k: v for k, v in s.items() if k != "seconds"} for s in warm_report["stages"]]
