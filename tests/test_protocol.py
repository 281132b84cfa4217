"""The subprocess transport (docs/protocol.md): frames, tensor names, a misbehaving port at every step,
the CLI's handling of it, and the in-process port served over the pipe (tests/fake_ports/proxy_port.py)."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import struct
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load as st_load

from harness.config import load_port_settings
from harness.errors import (
    HarnessError,
    PortCrashed,
    PortFailure,
    PortPanic,
    PortProtocolError,
    PortTimeout,
    PortUnsupported,
    PortVersionError,
)
from harness.report.files import SCHEMA_PATH
from harness.transport import SubprocessPort, naming
from harness.transport.frames import MAGIC, decode_frame, encode_frame, json_float
from tests.needs import burn, needs

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_ports" / "fake_port.py"
PROXY = ROOT / "tests" / "fake_ports" / "proxy_port.py"

needs_burn = needs(burn)


def fake(mode: str) -> str:
    return shlex.join([sys.executable, str(FAKE), mode])


def proxy(*args: str) -> str:
    return shlex.join([sys.executable, str(PROXY), *args])


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # A wide terminal keeps rich from wrapping the message the test looks for; PYTHONPATH lets the
    # CLI run from a folder without harness.toml whether or not the package is installed.
    env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


# -- frames ----------------------------------------------------------------------------------------


def test_frame_layout_is_byte_exact() -> None:
    head = b'{"id":0,"method":"hello","args":{"protocol":1}}'
    want = MAGIC + struct.pack("<I", len(head)) + head + struct.pack("<Q", 0)
    assert encode_frame({"id": 0, "method": "hello", "args": {"protocol": 1}}) == want
    assert decode_frame(want).header == {"id": 0, "method": "hello", "args": {"protocol": 1}}
    assert decode_frame(want).tensors == {}


def test_frame_round_trip_with_named_tensors() -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensors = {
        "params/fc1.weight": np.asfortranarray(w),  # sent in logical (C) order, not memory order
        "state/exp_avg/fc1.weight": w * 2,
        "epoch_params/3/fc1.weight": w * 3,
        "mean": np.array([0.5, -1.0], np.float64),
        "orders": np.arange(8, dtype=np.int64).reshape(2, 4),
        "empty": np.zeros((0, 3), np.float32),
    }
    frame = decode_frame(encode_frame({"id": 7, "ok": True, "result": {"loss": 0.25}}, tensors))
    assert frame.header == {"id": 7, "ok": True, "result": {"loss": 0.25}}
    assert set(frame.tensors) == set(tensors)
    for k, v in tensors.items():
        assert frame.tensors[k].dtype == v.dtype and frame.tensors[k].shape == v.shape
        np.testing.assert_array_equal(frame.tensors[k], v)
    # The payload is plain safetensors with the protocol's dtype names.
    data = encode_frame({}, tensors)
    (h,) = struct.unpack_from("<I", data, 4)
    payload = data[16 + h :]
    meta = json.loads(payload[8 : 8 + struct.unpack_from("<Q", payload)[0]])
    assert {meta[k]["dtype"] for k in tensors} == {"F32", "F64", "I64"}
    assert st_load(payload)["params/fc1.weight"].tolist() == w.tolist()


@settings(max_examples=50, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    dtype=st.sampled_from([np.float32, np.float64, np.int64]),
    rid=st.integers(0, 2**53),
    text=st.text(max_size=20),
)
def test_frame_round_trip_property(shape: list[int], dtype: type, rid: int, text: str) -> None:
    x = (np.arange(int(np.prod(shape)), dtype=np.float64) - 3).astype(dtype).reshape(shape)
    frame = decode_frame(encode_frame({"id": rid, "s": text}, {"x": x}))
    assert frame.header == {"id": rid, "s": text}
    assert frame.tensors["x"].dtype == x.dtype and frame.tensors["x"].shape == x.shape
    np.testing.assert_array_equal(frame.tensors["x"], x)


def test_non_finite_floats_travel_as_strings() -> None:
    data = encode_frame({"loss": math.inf, "v": [math.nan, -math.inf, 1.5]})
    assert b"Infinity" in data and b"NaN" not in data.replace(b'"NaN"', b"")
    h = decode_frame(data).header
    assert h == {"loss": "Infinity", "v": ["NaN", "-Infinity", 1.5]}
    assert json_float(h["loss"], "loss") == math.inf and math.isnan(json_float(h["v"][0], "v"))
    assert math.isnan(json_float(None, "loss"))  # serde_json's spelling of a non-finite float
    with pytest.raises(PortProtocolError, match="expected a number"):
        json_float("1.0", "loss")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello world\n", r"not a frame: b'hello world\\n'"),
        (MAGIC + struct.pack("<I", 3) + b"{x}" + struct.pack("<Q", 0), "not UTF-8 JSON"),
        (MAGIC + struct.pack("<I", 2) + b"[]" + struct.pack("<Q", 0), "not a JSON object"),
        (MAGIC + struct.pack("<I", 2) + b"{}" + struct.pack("<Q", 5) + b"junk!", "not a safetensors buffer"),
        (MAGIC + struct.pack("<I", 2) + b"{}", "truncated frame"),
        (encode_frame({}) + b"x", "after the end of the frame"),
    ],
)
def test_malformed_frames_are_protocol_errors(data: bytes, message: str) -> None:
    with pytest.raises(PortProtocolError, match=message):
        decode_frame(data)


# -- tensor names ----------------------------------------------------------------------------------


def test_naming_scheme_round_trips_groups_indices_and_state() -> None:
    p = {"fc1.weight": np.ones((2, 3), np.float32), "fc1.bias": np.zeros(2, np.float32)}
    flat = {
        **naming.flatten("params", p),
        **naming.flatten_indexed("epoch_params", [p, p, p, p]),
        **naming.flatten_state({"step": 6, "exp_avg": p, "exp_avg_sq": p}),
    }
    assert {"params/fc1.weight", "epoch_params/3/fc1.weight", "state/exp_avg/fc1.weight"} <= set(flat)
    assert "state/exp_avg_sq/fc1.bias" in flat and not any("step" in k for k in flat)
    back = decode_frame(encode_frame({}, flat)).tensors  # safetensors reorders its entries
    order = list(p)
    assert list(naming.group(back, "params", order)) == order
    epochs = naming.indexed_groups(back, "epoch_params", order)
    assert len(epochs) == 4 and all(list(g) == order for g in epochs)
    state = naming.unflatten_state(back, 6, order)
    assert state["step"] == 6 and list(state) == ["step", "exp_avg", "exp_avg_sq"]
    np.testing.assert_array_equal(state["exp_avg"]["fc1.weight"], p["fc1.weight"])
    # A group does not swallow its numbered sub-groups or other prefixes.
    assert naming.group(back, "epoch_params") == {}


def test_indexed_groups_must_be_numbered_without_gaps() -> None:
    w = np.zeros(1, np.float32)
    with pytest.raises(PortProtocolError, match=r"numbered \[0, 2\]"):
        naming.indexed_groups({"epoch_params/0/a": w, "epoch_params/2/a": w}, "epoch_params")
    with pytest.raises(PortProtocolError, match="does not follow"):
        naming.indexed_groups({"epoch_params/a": w}, "epoch_params")


# -- a misbehaving port, spoken to directly ----------------------------------------------------------

FAILURES = [
    ("crash", PortCrashed, r"crashed during 'transform' \(exit code 3\); its last stderr line: fake port: boom"),
    ("garbage", PortProtocolError, r"not a frame: b'hello world\\n'"),
    ("hang", PortTimeout, r"timed out after 1\.5 s on 'transform'"),
    ("deaf", PortTimeout, r"timed out after 1\.5 s on 'transform'"),  # never reads: the write itself blocks
    ("protocol4", PortVersionError, "the port speaks protocol 4, this harness speaks 1, 2 or 3"),
    ("panic", PortPanic, r"panicked in 'transform': index out of bounds: the len is 3 but the index is 7$"),
    ("wrong-id", PortProtocolError, r"answered request 1 \('transform'\) with id 2"),
    ("bad-error", PortProtocolError, "error answer to 'transform' is malformed"),
]


@pytest.mark.parametrize(("mode", "error", "message"), FAILURES)
def test_each_failure_raises_its_port_error_and_never_hangs(mode: str, error: type, message: str) -> None:
    port = SubprocessPort(fake(mode), timeout=1.5)
    big = np.zeros((200_000, 4))  # 6 MB: more than a pipe holds, so a port that does not read blocks the write
    t0 = time.monotonic()
    with pytest.raises(error, match=message) as first:
        port.transform(big, np.zeros(4), np.ones(4))
    assert isinstance(first.value, PortFailure) and "\n" not in str(first.value)
    # The next stage gets the same kind of error at once: a panic leaves the port up, anything else
    # has stopped it, and nothing is restarted.
    with pytest.raises(error):
        port.transform(big, np.zeros(4), np.ones(4))
    assert time.monotonic() - t0 < 10
    proc = port._process._proc if port._process is not None else None
    port.close()
    assert proc is None or proc.poll() is not None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="CPU time is read from Linux's /proc")
def test_a_timeout_says_whether_the_port_was_waiting_or_computing() -> None:
    with SubprocessPort(fake("hang"), timeout=1.5) as port, pytest.raises(PortTimeout) as waiting:
        port.transform(np.zeros((2, 4)), np.zeros(4), np.ones(4))
    cpu = float(re.search(r"it had used (\d+\.\d) s of CPU", str(waiting.value))[1])  # type: ignore[index]
    assert cpu < 1.0 and str(waiting.value).endswith("its last stderr line: fake port: waiting for a lock")
    # Where it waits, where the kernel says so (a sleeping process: hrtimer_nanosleep or a poll).
    probe = subprocess.Popen(["sleep", "5"])
    time.sleep(0.2)
    told = Path(f"/proc/{probe.pid}/wchan").read_text().strip() not in ("", "0")
    probe.kill()
    probe.wait()
    if told:
        assert ", waiting in " in str(waiting.value), waiting.value
    with SubprocessPort(fake("busy"), timeout=2.0) as port, pytest.raises(PortTimeout) as computing:
        port.transform(np.zeros((2, 4)), np.zeros(4), np.ones(4))
    cpu = float(re.search(r"it had used (\d+\.\d) s of CPU", str(computing.value))[1])  # type: ignore[index]
    # A spinning port on a loaded two-core machine still gets a good share of the 2 s.
    assert cpu >= 0.3, computing.value


def test_a_reader_keeps_its_pipe_open_so_the_next_port_cannot_inherit_its_number() -> None:
    # A port's Popen, once collected, closes its pipe; if the reader thread held only the number, the
    # next port's pipe would reuse it and the old thread would read (steal) that port's answers.
    import gc

    from harness.transport.process import _Reader

    r, w = os.pipe()
    stream = os.fdopen(r, "rb")
    reader = _Reader(stream)
    del stream
    gc.collect()
    assert os.fstat(r).st_ino == os.fstat(w).st_ino, "the reader's descriptor was closed under it"
    r2, w2 = os.pipe()
    try:
        assert r not in (r2, w2)
        os.write(w, b"answer")
        reader._deadline = time.monotonic() + 5
        assert reader.read_exact(6) == b"answer"
    finally:
        for fd in (w, r2, w2):
            os.close(fd)


def test_a_port_that_cannot_start_is_one_clear_error() -> None:
    port = SubprocessPort("/nonexistent/port serve")
    with pytest.raises(PortCrashed, match="cannot start the port '/nonexistent/port'"):
        port.effective_config()
    with pytest.raises(PortFailure, match="cannot parse the port command"):
        SubprocessPort("port 'serve").start()


def test_scripted_port_shapes_progress_and_close() -> None:
    p = {"fc1.weight": np.zeros((2, 3), np.float32), "fc1.bias": np.zeros(2, np.float32)}
    with SubprocessPort(fake("scripted")) as port:
        assert (port.backend, port.fault) == ("fake", "a,b")
        assert port.identity() == {"name": "fake-scripted", "backend": "fake", "faults": ["a", "b"], "protocol": 3}
        loss, grad = port.loss(np.zeros(2, np.float32), np.zeros(2, np.float32))
        assert loss == math.inf and grad.dtype == np.float32
        seen: list[tuple[int, float]] = []

        def on_epoch(e: int, loss: float) -> None:
            seen.append((e, loss))
            raise RuntimeError("a progress callback never aborts training")

        out = port.train(
            np.zeros((4, 3), np.float32), np.zeros(4, np.float32), params=p, epochs=3, record_steps=2, on_epoch=on_epoch
        )
        assert [e for e, _ in seen] == [1, 2, 3] and math.isnan(seen[1][1])
        assert list(out) == [
            "step_loss",
            "epoch_loss",
            "init",
            "final",
            "epoch_params",
            "step_params",
            "step_grads",
            "orders",
            "state",
        ]
        assert out["step_loss"].dtype == np.float32 and out["epoch_loss"].dtype == np.float64
        assert out["orders"].dtype == np.int64 and out["orders"].shape == (3, 4)
        assert [g["fc1.bias"][0] for g in out["epoch_params"]] == [0.0, 1.0, 2.0]
        assert len(out["step_params"]) == len(out["step_grads"]) == 2
        assert list(out["final"]) == ["fc1.weight", "fc1.bias"] and out["final"]["fc1.weight"].shape == (2, 3)
        assert out["state"]["step"] == 7 and set(out["state"]) == {"step", "exp_avg", "exp_avg_sq"}
        new, state = port.optimizer_step(p, p, {"step": 5, "exp_avg": p, "exp_avg_sq": p})
        assert state["step"] == 6 and list(new) == list(p)
        probs, acc = port.evaluate(p, np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
        assert acc == 0.75 and probs.dtype == np.float32
        # Not in hello's method list: refused without being sent; the port stays up.
        with pytest.raises(PortUnsupported, match="does not implement 'forward'"):
            port.forward(p, np.zeros((1, 3), np.float32))
        proc = port._process._proc  # type: ignore[union-attr]
        assert port.evaluate(p, np.zeros((2, 3), np.float32), np.zeros(2, np.float32))[1] == 0.75
    assert proc.wait(5) == 0  # `shutdown` answered, then a clean exit


OLDER_PORTS = [
    # Protocol 2 added samples with a shape of their own ([n, C, H, W]), protocol 3 int64 batches (token ids).
    (
        "protocol1",
        np.zeros((2, 1, 8, 8), np.float32),
        [],
        r"protocol 1, which carries feature rows \[n, d\] only; .* samples of shape \[1, 8, 8\] \(protocol 2\): rebuild",
    ),
    (
        "protocol2",
        np.zeros((2, 8), np.int64),
        [np.zeros((2, 1, 8, 8), np.float32)],
        r"protocol 2, which carries float32 batches only; this model takes int64 ids \(protocol 3\): rebuild",
    ),
]


@pytest.mark.parametrize(("mode", "batch", "served", "refusal"), OLDER_PORTS, ids=[m[0] for m in OLDER_PORTS])
def test_an_older_port_serves_what_it_reads_and_is_refused_a_newer_batch_by_name(
    mode: str, batch: np.ndarray, served: list[np.ndarray], refusal: str
) -> None:
    """A port built before a protocol's new batches still serves every model whose input it reads (flat
    feature rows, and what its own version added), and the first batch it cannot read is refused with
    what to do, before anything is sent."""
    p = {"fc1.weight": np.zeros((2, 3), np.float32), "fc1.bias": np.zeros(2, np.float32)}
    y = np.zeros(2, np.float32)
    with SubprocessPort(fake(mode)) as port:
        assert port.identity()["protocol"] == int(mode[-1])
        for x in [np.zeros((2, 3), np.float32), *served]:
            assert port.evaluate(p, x, y)[1] == 0.75
        for call in (
            lambda: port.forward(p, batch),
            lambda: port.backward(p, batch, y),
            lambda: port.evaluate(p, batch, y),
            lambda: port.train(batch, y, params=p, epochs=1),
        ):
            with pytest.raises(PortVersionError, match=refusal):
                call()
        # Still up: a refused batch is no failure of the port.
        assert port.evaluate(p, np.zeros((2, 3), np.float32), y)[1] == 0.75
    with SubprocessPort(fake("scripted")) as port:
        assert port.identity()["protocol"] == 3


# -- the CLI -----------------------------------------------------------------------------------------

CLI_FAILURES = [
    ("crash", ["crashed", "exit code 3", "fake port: boom: index out of bounds"]),
    ("garbage", ["not a frame", "b'hello world\\n'"]),
    ("hang", ["timed out after 2 s"]),
    ("protocol4", ["the port speaks protocol 4, this harness speaks 1, 2 or 3"]),
    ("panic", ["panicked in 'forward'", "index out of bounds"]),
    ("wrong-id", ["with id 2"]),
]


@pytest.mark.parametrize(("mode", "needles"), CLI_FAILURES)
def test_diff_with_a_failing_port_is_stage_error_exit_2(tmp_path: Path, mode: str, needles: list[str]) -> None:
    js = tmp_path / "r.json"
    r = harness("diff", "forward", "--port-cmd", fake(mode), "--port-timeout", "2", "--json", str(js), cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out
    assert len([line for line in r.stderr.splitlines() if line.strip()]) <= 1, r.stderr
    assert "ERROR" in r.stdout
    for needle in needles:
        assert needle in out, out
    report = json.loads(js.read_text())
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    assert report["exit_code"] == 2 and report["stages"][0]["status"] == "ERROR"
    assert report["config"]["port"]["cmd"] == fake(mode) and report["config"]["port"]["timeout_s"] == 2.0


@pytest.mark.parametrize("option", [["--fault", "adam-eps"], ["--backend", "flex"]])
def test_port_cmd_refuses_backend_and_fault(tmp_path: Path, option: list[str]) -> None:
    r = harness("diff", "forward", "--port-cmd", fake("panic"), *option, cwd=tmp_path)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and f"{option[0]} cannot be combined with --port-cmd" in lines[0]
    # The same holds for a port command from harness.toml.
    (tmp_path / "harness.toml").write_text(f"[port]\ncmd = {json.dumps(fake('panic'))}\n")
    r = harness("diff", "forward", *option, cwd=tmp_path)
    assert r.returncode == 2 and "[port] cmd in harness.toml" in r.stderr


def test_port_settings_from_harness_toml(tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text(f"[port]\ncmd = {json.dumps(fake('hang'))}\ntimeout_s = 1.5\n")
    r = harness("diff", "forward", cwd=tmp_path)
    assert r.returncode == 2 and "timed out after 1.5 s" in r.stdout, r.stdout + r.stderr
    # The command line wins over the file.
    r = harness("diff", "forward", "--port-timeout", "1", cwd=tmp_path)
    assert r.returncode == 2 and "timed out after 1 s" in r.stdout
    (tmp_path / "harness.toml").write_text("[port]\ncmd = 'x'\ntimeout = 3\n")
    r = harness("diff", "forward", cwd=tmp_path)
    assert r.returncode == 2 and "unknown key 'timeout' in [port]" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "harness.toml").unlink()
    r = harness("diff", "forward", "--port-cmd", fake("panic"), "--port-timeout", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--port-timeout must be a positive number" in r.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[port]\ncmd = ''\n", "cmd must be a non-empty string"),
        ("[port]\ncmd = 'x'\ntimeout_s = -1\n", "timeout_s must be a positive number"),
        ("[port]\ntimeout_s = true\n", "timeout_s must be a positive number"),
        ("port = 3\n", r"\[port\] must be a table"),
        ("[port\n", "cannot parse"),
    ],
)
def test_bad_port_settings_are_harness_errors(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "harness.toml").write_text(toml)
    with pytest.raises(HarnessError, match=message):
        load_port_settings(tmp_path)


def test_port_settings_default_to_none(tmp_path: Path) -> None:
    assert load_port_settings(tmp_path) == (None, None)
    (tmp_path / "harness.toml").write_text("[tolerances.forward]\nrtol = 1e-5\n[port]\ntimeout_s = 30\n")
    assert load_port_settings(tmp_path) == (None, 30.0)


def test_every_stage_errors_cleanly_after_a_crash(tmp_path: Path) -> None:
    """`diff all` against a port that dies on its first request: every port stage is ERROR at once."""
    t0 = time.monotonic()
    r = harness(
        "diff", "all", "--port-cmd", fake("crash"), "--epochs", "1", "--json", str(tmp_path / "r.json"), cwd=tmp_path
    )
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    stages = json.loads((tmp_path / "r.json").read_text())["stages"]
    assert all(s["status"] == "ERROR" for s in stages), [(s["stage"], s["status"]) for s in stages]
    assert "exit code 3" in stages[0]["error"]
    assert all("since an earlier failure" in s["error"] for s in stages[1:])
    assert time.monotonic() - t0 < 120


# -- the in-process port over the pipe -------------------------------------------------------------


def _same(a: object, b: object, where: str = "") -> None:
    assert type(a) is type(b) or (isinstance(a, float) and isinstance(b, float)), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), where  # type: ignore[arg-type]
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")  # type: ignore[index]
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where  # type: ignore[arg-type]
        for i, (x, y) in enumerate(zip(a, b, strict=True)):  # type: ignore[call-overload]
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where  # type: ignore[union-attr]
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where  # type: ignore[arg-type]
    else:
        assert a == b, where


@needs_burn
@pytest.mark.parametrize("fault", ["", "user-port"])
def test_proxy_returns_exactly_what_the_extension_returns(fault: str) -> None:
    from harness.config import BUNDLED_DATA, RunConfig
    from harness.data import prepare
    from harness.port import BurnPort
    from harness.reference import model as ref_model
    from harness.reference import train as ref_train

    cfg = RunConfig()
    prep = prepare(cfg)
    init = ref_model.init_params(prep.x_train.shape[1], 0)
    orders = ref_train.batch_orders(len(prep.y_train), 2, 0)
    x, y = prep.x_train[:64], prep.y_train[:64]
    local = BurnPort("flex", fault, 2)
    with SubprocessPort(proxy("--fault", fault, "--epochs", "2")) as remote:
        assert remote.fault == fault and remote.backend == "flex"
        for name, call in [
            ("prepare", lambda p: p.prepare(BUNDLED_DATA, "label", 0.2, 42)),
            ("load_csv", lambda p: p.load_csv(BUNDLED_DATA)),
            ("split", lambda p: p.split(100, 0.2, 42)),
            ("fit_scaler", lambda p: p.fit_scaler(np.asarray(prep.table.features), prep.train_idx)),
            ("effective_config", lambda p: p.effective_config()),
            ("roundtrip", lambda p: p.roundtrip(init)),
            ("forward", lambda p: p.forward(init, x)),
            ("loss", lambda p: p.loss(np.array([0.0, 1e-7, 0.5, 1.0], np.float32), np.array([1, 0, 1, 0], np.float32))),
            ("backward", lambda p: p.backward(init, x, y)),
            ("optimizer_step", lambda p: p.optimizer_step(init, init, None)),
            (
                "train",
                lambda p: p.train(prep.x_train, prep.y_train, params=init, orders=orders, epochs=2, record_steps=3),
            ),
            ("evaluate", lambda p: p.evaluate(init, x, y)),
            ("accuracy", lambda p: p.accuracy(np.linspace(0, 1, 64), y)),
        ]:
            _same(call(local), call(remote), name)
        _, state = local.optimizer_step(init, init, None)
        _same(local.optimizer_step(init, init, state), remote.optimizer_step(init, init, state), "optimizer_step 2")
        with pytest.raises(PortFailure, match=r"the reference has no 'fc3\.bias' \(the port's model has\)"):
            remote.forward({k: v for k, v in init.items() if k != "fc3.bias"}, x)
        assert remote.evaluate(init, x, y)[1] == local.evaluate(init, x, y)[1]  # still up after a rejection


@needs_burn
@pytest.mark.slow
@pytest.mark.parametrize("fault", ["", "user-port"])
def test_diff_all_over_the_pipe_matches_in_process(tmp_path: Path, fault: str) -> None:
    local_json, remote_json = tmp_path / "local.json", tmp_path / "remote.json"
    local = harness("diff", "all", *(["--fault", fault] if fault else []), "--json", str(local_json), cwd=tmp_path)
    remote = harness(
        "diff",
        "all",
        "--port-cmd",
        proxy(*(["--fault", fault] if fault else [])),
        "--json",
        str(remote_json),
        cwd=tmp_path,
    )
    assert local.returncode == remote.returncode, remote.stdout + remote.stderr
    statuses = [
        {s["stage"]: s["status"] for s in json.loads(p.read_text())["stages"]} for p in (local_json, remote_json)
    ]
    assert statuses[0] == statuses[1]
    assert json.loads(remote_json.read_text())["config"]["port"]["name"] == "proxy (harness._burn)"
