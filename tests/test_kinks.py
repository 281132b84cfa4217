"""The ReLU-kink allowance (harness/reference/kinks.py): a ReLU input within rounding of zero may fall on
either side in a correct port, and the gradient comparison allows exactly what that changes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.compare import FLOAT32, compare
from harness.reference.kinks import KINK_RTOL, slack

NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]
RELU = torch.relu


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]))
        net[0].bias.zero_()
    return net


def _grads(net: nn.Sequential, x: torch.Tensor) -> dict[str, np.ndarray]:
    net.zero_grad()
    net(x).sum().backward()
    return {n: p.grad.numpy().copy() for n, p in net.named_parameters()}


def test_an_input_at_the_kink_allows_what_flipping_it_changes_and_nothing_else() -> None:
    net = _net()
    # Unit 1's input is 1e-9 on the first row: at the kink (torch takes it as inactive only for <= 0).
    x = torch.tensor([[0.5, 1e-9, 2.0], [1.0, 3.0, -1.0]])
    base = _grads(net, x)
    allowance = slack(lambda: _grads(net, x), NAMES)
    # Flipped by hand: unit 1's derivative on row 0 is 1 in torch (1e-9 > 0); a port that took it as 0
    # loses row 0's contribution through unit 1.
    w2 = net[2].weight.detach().numpy()[0]
    want_w1 = np.zeros((4, 3))
    want_w1[1] = w2[1] * x[0].numpy()
    np.testing.assert_allclose(allowance["0.weight"], np.abs(want_w1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(allowance["0.bias"], [0, abs(w2[1]), 0, 0], rtol=1e-6, atol=1e-12)
    assert allowance["2.weight"].max() < 1e-8  # unit 1's output is 1e-9 either way

    port = {k: v.copy() for k, v in base.items()}
    port["0.weight"][1] -= w2[1] * x[0].numpy()
    assert not compare("w", base["0.weight"], port["0.weight"], FLOAT32).passed
    assert compare("w", base["0.weight"], port["0.weight"], FLOAT32, slack=allowance["0.weight"]).passed
    # Control: the same allowance does not excuse a difference through another unit.
    other = base["0.weight"].copy()
    other[2] += 1e-3
    assert not compare("w", base["0.weight"], other, FLOAT32, slack=allowance["0.weight"]).passed


def test_no_input_near_a_kink_means_no_allowance() -> None:
    net = _net()
    x = torch.tensor([[0.5, 0.2, 2.0], [1.0, 3.0, -1.0]])
    assert slack(lambda: _grads(net, x), NAMES) == {}
    # The threshold is relative to the call's largest input: 1e-4 of it is a real activation.
    x = torch.tensor([[0.5, 3.0 * 10 * KINK_RTOL, 2.0], [1.0, 3.0, -1.0]])
    assert slack(lambda: _grads(net, x), NAMES) == {}
    assert torch.relu is RELU  # torch's own function is back
