"""The fixture burn-diff's packed-layout test reads (rust_bridge/crates/burn-diff/tests/packed_torch.rs) is
torch's own numbers: its LSTM, GRU, attention and encoder outputs are what this torch computes from its parameters
and inputs, so the Rust test compares Burn with PyTorch, not with a stale file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file
from torch import nn

MASK = torch.tensor([[False, False, False, True, True], [True] * 5])
FIXTURE = Path(__file__).resolve().parent.parent / "rust_bridge/crates/burn-diff/tests/fixtures/packed.safetensors"


def test_the_packed_fixture_holds_torchs_outputs() -> None:
    f = {k: torch.from_numpy(v) for k, v in load_file(FIXTURE).items()}
    modules = {
        "lstm": nn.LSTM(3, 4, batch_first=True),
        "gru": nn.GRU(3, 4, batch_first=True),
        "attn": nn.MultiheadAttention(8, 2, batch_first=True),
        "enc": nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2, enable_nested_tensor=False
        ).eval(),
    }
    for prefix, m in modules.items():
        m.load_state_dict({k.split(".", 1)[1]: v for k, v in f.items() if k.startswith(prefix + ".")})
    with torch.no_grad():
        got = {
            "lstm_out": modules["lstm"](f["x_rnn"])[0],
            "gru_out": modules["gru"](f["x_rnn"])[0],
            "attn_out": modules["attn"](f["x_attn"], f["x_attn"], f["x_attn"], need_weights=False)[0],
            "enc_out": modules["enc"](f["x_attn"]),
            "attn_masked_out": modules["attn"](
                f["x_attn"], f["x_attn"], f["x_attn"], key_padding_mask=MASK, need_weights=False
            )[0],
        }
    for k, v in got.items():
        # The same computation, perhaps on other kernels than the machine that wrote the file.
        np.testing.assert_allclose(v.numpy(), f[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k, equal_nan=True)
    assert f["lstm.weight_ih_l0"].shape == (16, 3) and f["attn.in_proj_weight"].shape == (24, 8)
