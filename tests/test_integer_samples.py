"""Integer samples (`[data] sample_dtype = "int64"`): token ids reach the reference's model as torch.long,
as an nn.Embedding takes them, and the port as int64 (protocol 3); the data file is checked to hold whole
numbers float32 carries exactly, and a model given the wrong input type is told what to set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from harness.config import SAMPLE_INT_LIMIT, RunConfig, load_model_settings
from harness.errors import HarnessError, PortInputError
from harness.reference.reference import Reference
from harness.samples import ShapedPort, model_input
from harness.transport import SubprocessPort
from tests.needs import binary, needs

ROOT = Path(__file__).resolve().parent.parent
SEQUENCE = ROOT / "examples" / "sequence"
needs_port = needs(binary, "sequence-port")


class _Tokens(nn.Module):
    """A token model as its author writes it: the ids go straight into the Embedding (no `.long()`)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(x).mean(1))


class _Rows(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _cfg(tmp_path: Path, cls: str, **kw: Any) -> RunConfig:
    module = cls.strip("_").lower()  # one module per model: an imported module is reused by its name
    (tmp_path / f"{module}.py").write_text(
        f"from tests.test_integer_samples import {cls}\n\ndef build(n, k):\n    return {cls}()\n"
    )
    return RunConfig(
        reference=f"{module}:build", reference_dir=tmp_path, task="multiclass", loss="CrossEntropyLoss", **kw
    )


def test_the_sequence_examples_declare_int64_ids() -> None:
    for name in ("sequence", "transformer"):
        settings = load_model_settings(ROOT / "examples" / name / "harness.toml")
        assert (settings["sample_dtype"], settings["scaler"]) == ("int64", "none")
    assert load_model_settings(ROOT / "examples" / "digits-cnn" / "harness.toml").get("sample_dtype") is None


@pytest.mark.parametrize(
    ("cell", "shown"),
    [("2.5", "2.5"), (str(SAMPLE_INT_LIMIT + 1), "16777217.0"), ("-1e9", "-1000000000.0")],
)
def test_a_data_file_whose_ids_float32_cannot_carry_is_refused_by_row_and_column(
    tmp_path: Path, cell: str, shown: str
) -> None:
    from harness.data import prepare

    rows = [["1", "2", "0"], ["3", "4", "1"], ["5", cell, "0"], ["7", "8", "1"], ["9", "0", "0"]]
    (tmp_path / "ids.csv").write_text("t0,t1,label\n" + "".join(",".join(r) + "\n" for r in rows))
    cfg = RunConfig(data=tmp_path / "ids.csv", task="multiclass", loss="CrossEntropyLoss", scaler="none")
    with pytest.raises(HarnessError) as e:
        prepare(cfg.with_(sample_dtype="int64"))
    assert str(e.value) == (
        f"[data] sample_dtype = \"int64\": row 3, column 't1' holds {shown}, "
        f"not a whole number of at most 2^24 = {SAMPLE_INT_LIMIT} in magnitude"
    )
    with pytest.raises(HarnessError, match='set scaler = "none"'):  # a config built in code, not read
        prepare(cfg.with_(sample_dtype="int64", scaler="all"))
    # Control: the same file with a whole id there, and the largest float32 carries exactly.
    for good in ("6", str(SAMPLE_INT_LIMIT), str(-SAMPLE_INT_LIMIT)):
        rows[2][1] = good
        (tmp_path / "ids.csv").write_text("t0,t1,label\n" + "".join(",".join(r) + "\n" for r in rows))
        prepared = prepare(cfg.with_(sample_dtype="int64"))
        assert float(good) in np.concatenate([prepared.x_train, prepared.x_test])[:, 1]


def test_model_input_is_int64_and_exact_up_to_the_limit() -> None:
    x = np.array([[0.0, 9.0], [float(SAMPLE_INT_LIMIT), -3.0]], np.float32)
    ids = model_input(x, (2,), "int64")
    assert ids.dtype == np.int64 and ids.tolist() == [[0, 9], [SAMPLE_INT_LIMIT, -3]]
    assert model_input(x, (1, 2), "float32").dtype == np.float32
    with pytest.raises(HarnessError, match=r"row 1, value 1 holds 0\.5,"):
        model_input(np.array([[1.0, 0.5]]), (2,), "int64")


def test_a_token_model_as_written_runs_on_int64_ids_and_matches_float_ids_cast_by_hand(tmp_path: Path) -> None:
    ref = Reference(_cfg(tmp_path, "_Tokens", sample_dtype="int64", scaler="none"), 5, 2)
    params = ref.init_params(0)
    x = np.random.default_rng(0).integers(0, 10, (16, 5)).astype(np.float32)
    assert ref.batch(x).dtype == torch.long and ref.batch(x, float64=True).dtype == torch.long
    got = ref.forward(params, x)
    model = ref.build(params).eval()
    with torch.no_grad():
        want = model.head(model.emb(torch.from_numpy(x).long()).mean(1)).numpy()
    np.testing.assert_array_equal(got["head"], want)
    # Training and gradients run on the ids too (float64 runs keep them integer).
    loss, grads = ref.backward(params, x[:8], np.arange(8, dtype=np.float32) % 2, float64=True)
    assert np.isfinite(loss) and grads["emb.weight"].dtype == np.float64


def test_a_token_model_given_float_ids_is_told_to_set_sample_dtype(tmp_path: Path) -> None:
    with pytest.raises(HarnessError) as e:
        Reference(_cfg(tmp_path, "_Tokens"), 5, 2)
    text = str(e.value)
    assert "\n" not in text
    assert text.startswith("the reference model 'tokens:build' fails on a batch of float32 samples of shape [5]: ")
    assert text.endswith('(the model takes integer ids: set [data] sample_dtype = "int64" in harness.toml)')
    # Control: a float model given int64 ids is told the other way round.
    with pytest.raises(HarnessError) as e:
        Reference(_cfg(tmp_path, "_Rows", sample_dtype="int64", scaler="none"), 3, 2)
    assert str(e.value).endswith('(the model takes float inputs: [data] sample_dtype = "int64" is for token ids)')
    assert Reference(_cfg(tmp_path, "_Rows"), 3, 2).layer_names == ["fc"]


class _Recorder:
    """A port that keeps what its model methods receive."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def forward(self, params: dict, x: np.ndarray) -> dict:
        self.seen.append(x)
        return {}

    def train(self, x: np.ndarray, y: np.ndarray, **kw: Any) -> dict:
        self.seen.append(x)
        return {}


def test_the_port_gets_int64_ids_in_the_sample_shape() -> None:
    rec = _Recorder()
    port = ShapedPort(rec, (), "int64")  # type: ignore[arg-type]
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    port.forward({}, x)
    port.train(x, np.zeros(2, np.float32), epochs=1)
    assert all(s.dtype == np.int64 and s.tolist() == [[1, 2, 3], [4, 5, 6]] for s in rec.seen)
    # Control: float samples stay float32.
    ShapedPort(rec, (3,)).forward({}, x)  # type: ignore[arg-type]
    assert rec.seen[-1].dtype == np.float32


def test_the_sequence_reference_takes_int64_ids_from_its_config() -> None:
    cfg = RunConfig(**load_model_settings(SEQUENCE / "harness.toml"))
    ref = Reference(cfg, 8, 2)
    assert ref.layer_names[0] == "emb" and ref.batch(np.zeros((2, 8))).dtype == torch.long
    with pytest.raises(HarnessError, match=r'set \[data\] sample_dtype = "int64"'):
        Reference(cfg.with_(sample_dtype="float32"), 8, 2)


@needs_port
def test_the_sequence_port_reads_int64_ids_off_the_wire_exactly_and_refuses_what_is_not_an_id() -> None:
    cfg = RunConfig(**load_model_settings(SEQUENCE / "harness.toml"))
    params = Reference(cfg, 8, 2).init_params(0)
    ids = np.random.default_rng(1).integers(0, 10, (4, 8))
    with SubprocessPort(str(binary("sequence-port"))) as port:
        assert port.protocol() == 3
        got = port.forward(params, ids)
        want = Reference(cfg, 8, 2).forward(params, ids.astype(np.float32))
        np.testing.assert_allclose(got["head"].reshape(4, -1), want["head"], rtol=1e-5, atol=1e-6)
        out_of_vocabulary = ids.copy()
        out_of_vocabulary[2, 5] = 10
        with pytest.raises(PortInputError, match=r"token ids must be whole numbers in 0\.\.10, found 10"):
            port.forward(params, out_of_vocabulary)
        beyond = ids.copy()
        beyond[0, 0] = SAMPLE_INT_LIMIT + 1
        with pytest.raises(PortInputError, match=r"'x' holds the integer 16777217, beyond 2\^24"):
            port.forward(params, beyond)
