"""Counterfactual diagnosis of the optimizer stage: ports whose Adam step is the reference's with one
change, written here with torch's own optimizers and clipping utilities (not with the diagnosis's
replay), each asserting the cause the diagnosis names and the fitted value; plus an unexplained change
("no candidate") and the unchanged reference (no diagnosis at all)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from harness.config import BUNDLED_DATA, RunConfig
from harness.pipeline import run_with
from harness.stages.base import Context

Params = dict[str, np.ndarray]
CFG = RunConfig(data=BUNDLED_DATA)


def _tensors(params: Params) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in params.items()}


def _state_out(opt: torch.optim.Optimizer, ps: dict[str, torch.Tensor]) -> dict[str, Any]:
    st = {k: opt.state[p] for k, p in ps.items()}
    return {
        "step": int(next(iter(st.values()))["step"]),
        "exp_avg": {k: s["exp_avg"].numpy().copy() for k, s in st.items()},
        "exp_avg_sq": {k: s["exp_avg_sq"].numpy().copy() for k, s in st.items()},
    }


def torch_port(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    clip: Callable[[list[torch.Tensor]], None] | None = None,
    keep_state: bool = True,
    amsgrad: bool = False,
) -> Callable[[Params, Params, dict | None], tuple[Params, dict]]:
    """One step of a torch optimizer from the given parameters, gradients and (Adam) state; with `amsgrad`
    the loaded state's running maximum is its second moment (torch needs one to resume)."""

    def step(params: Params, grads: Params, state: dict | None) -> tuple[Params, dict]:
        ps = {k: t.requires_grad_() for k, t in _tensors(params).items()}
        opt = make(list(ps.values()))
        for k, p in ps.items():
            p.grad = torch.tensor(grads[k], dtype=torch.float32)
            if keep_state and state and state.get("step", 0) > 0:
                opt.state[p] = {
                    "step": torch.tensor(float(state["step"])),
                    "exp_avg": torch.tensor(state["exp_avg"][k]),
                    "exp_avg_sq": torch.tensor(state["exp_avg_sq"][k]),
                    **({"max_exp_avg_sq": torch.tensor(state["exp_avg_sq"][k])} if amsgrad else {}),
                }
        if clip:
            clip(list(ps.values()))
        opt.step()
        return {k: p.detach().numpy().copy() for k, p in ps.items()}, _state_out(opt, ps)

    return step


def written_out_adam(
    bias_correction1: bool = True,
    bias_correction2: bool = True,
    eps_inside: bool = False,
    sign_update: bool = False,
    moments_from_grad: bool = False,
) -> Callable[[Params, Params, dict | None], tuple[Params, dict]]:
    """Adam as a port might write it by hand, with one of its usual slips."""
    lr, b1, b2, eps = CFG.lr, CFG.beta1, CFG.beta2, CFG.eps

    def step(params: Params, grads: Params, state: dict | None) -> tuple[Params, dict]:
        t = (state or {}).get("step", 0) + 1
        out: dict[str, Any] = {"step": t, "exp_avg": {}, "exp_avg_sq": {}}
        new = {}
        for k, p in params.items():
            g = torch.tensor(grads[k])
            m0 = (
                torch.tensor(state["exp_avg"][k])
                if t > 1
                else (g.clone() if moments_from_grad else torch.zeros_like(g))
            )
            v0 = (
                torch.tensor(state["exp_avg_sq"][k]) if t > 1 else (g * g if moments_from_grad else torch.zeros_like(g))
            )
            m = b1 * m0 + (1 - b1) * g
            v = b2 * v0 + (1 - b2) * g * g
            m_hat = m / (1 - b1**t) if bias_correction1 else m
            v_hat = v / (1 - b2**t) if bias_correction2 else v
            if sign_update:
                upd = lr * torch.sign(m_hat) * 0.5
            elif eps_inside:
                upd = lr * m_hat / torch.sqrt(v_hat + eps)
            else:
                upd = lr * m_hat / (torch.sqrt(v_hat) + eps)
            new[k] = (torch.tensor(p) - upd).numpy()
            out["exp_avg"][k], out["exp_avg_sq"][k] = m.numpy(), v.numpy()
        return new, out

    return step


class OptimizerOnlyPort:
    """A port whose only answer is one optimizer step (the optimizer stage asks nothing else)."""

    def __init__(self, step: Callable[[Params, Params, dict | None], tuple[Params, dict]]) -> None:
        self.optimizer_step = step


@functools.cache
def _reference() -> Context:
    """The reference's side, trained once for every case (the optimizer stage reads its whole run to find
    the largest-gradient step)."""
    ctx = Context(CFG)
    _ = ctx.ref_trace
    return ctx


def diagnose(step: Callable[[Params, Params, dict | None], tuple[Params, dict]]):
    ctx = Context(CFG, port=OptimizerOnlyPort(step))
    ctx.adopt_reference(_reference())
    return run_with(ctx, ["optimizer"]).results[0]


def adam(**kw: Any) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    args = {"lr": CFG.lr, "betas": (CFG.beta1, CFG.beta2), "eps": CFG.eps, **kw}
    return lambda ps: torch.optim.Adam(ps, **args)


CASES: list[tuple[str, Callable, str, dict[str, float]]] = [
    ("beta2 0.99", torch_port(adam(betas=(0.9, 0.99))), "adam.beta2", {"beta2": 0.99}),
    ("beta1 0.8", torch_port(adam(betas=(0.8, 0.999))), "adam.beta1", {"beta1": 0.8}),
    ("lr 3e-4", torch_port(adam(lr=3e-4)), "adam.lr", {"lr": 3e-4}),
    ("eps 1e-6", torch_port(adam(eps=1e-6)), "adam.eps", {"eps": 1e-6}),
    ("L2 weight decay", torch_port(adam(weight_decay=1e-2)), "adam.l2_weight_decay", {"weight_decay": 1e-2}),
    (
        "AdamW",
        torch_port(lambda ps: torch.optim.AdamW(ps, lr=CFG.lr, weight_decay=0.05, eps=CFG.eps)),
        "adam.decoupled_weight_decay",
        {"weight_decay": 0.05},
    ),
    (
        "clip norm per tensor",
        torch_port(adam(), clip=lambda ps: [torch.nn.utils.clip_grad_norm_([p], 0.01) for p in ps]),
        "clip.norm_per_tensor",
        {"max_norm": 0.01},
    ),
    (
        "clip global norm",
        torch_port(adam(), clip=lambda ps: torch.nn.utils.clip_grad_norm_(ps, 0.05)),
        "clip.norm_global",
        {"max_norm": 0.05},
    ),
    (
        "clip by value",
        torch_port(adam(), clip=lambda ps: torch.nn.utils.clip_grad_value_(ps, 1e-3)),
        "clip.value",
        {"clip_value": 1e-3},
    ),
    ("state reset", torch_port(adam(), keep_state=False), "adam.state_reset", {}),
    ("AMSGrad", torch_port(adam(amsgrad=True), amsgrad=True), "adam.amsgrad", {}),
    (
        "lr and beta2 at once",
        torch_port(adam(lr=3e-4, betas=(0.9, 0.99))),
        "adam.lr+beta2",
        {"lr": 3e-4, "beta2": 0.99},
    ),
    ("no bias correction", written_out_adam(False, False), "adam.no_bias_correction", {}),
    ("no bias correction 1", written_out_adam(bias_correction1=False), "adam.no_bias_correction1", {}),
    ("no bias correction 2", written_out_adam(bias_correction2=False), "adam.no_bias_correction2", {}),
    ("eps inside sqrt", written_out_adam(eps_inside=True), "adam.eps_inside_sqrt", {"eps": 1e-8}),
    ("moments from the first gradient", written_out_adam(moments_from_grad=True), "adam.moments_from_gradient", {}),
]


@pytest.mark.parametrize(("name", "step", "cause", "fitted"), CASES, ids=[c[0] for c in CASES])
def test_the_diagnosis_names_the_change(name: str, step: Callable, cause: str, fitted: dict[str, float]) -> None:
    res = diagnose(step)
    assert res.status == "FAIL"
    assert res.diagnosis, res.hint
    top = res.diagnosis[0]
    assert top["cause"] == cause, res.diagnosis
    assert top["max_error"] <= 1.0
    for k, v in fitted.items():
        assert top["parameters"][k] == pytest.approx(v, rel=0.02), top
    assert res.hint.startswith("reproduced by ")


def test_burns_default_adamw_decay_is_found_by_steps_with_zero_gradients() -> None:
    """AdamW with Burn's default weight decay (1e-4) where Adam is configured: each real step moves a
    parameter by 1e-7 relative more, inside float32's tolerance; the zero-gradient run (harness/stages/
    optimizer.py) shows it and the rate is named. Control: plain Adam passes that run (the test above)."""
    res = diagnose(torch_port(lambda ps: torch.optim.AdamW(ps, lr=CFG.lr, weight_decay=1e-4, eps=CFG.eps)))
    assert res.status == "FAIL", res.hint
    failing = {c.name.split(".")[0] for c in res.checks if not c.passed}
    assert failing == {"zero_grad100"}, failing
    assert [d["cause"] for d in res.diagnosis] == ["adam.decoupled_weight_decay"], res.hint
    assert res.diagnosis[0]["parameters"] == {"weight_decay": 1e-4}
    assert res.hint.startswith("reproduced by decoupled weight decay p *= 1 - lr wd every step")


def test_an_unexplained_change_is_said_to_be_unexplained() -> None:
    res = diagnose(written_out_adam(sign_update=True))
    assert res.status == "FAIL" and res.diagnosis == []
    assert res.hint.startswith("no candidate cause reproduces the port's Adam steps; step 1: port update")


def test_the_unchanged_reference_passes_without_a_diagnosis() -> None:
    res = diagnose(torch_port(adam()))
    assert res.status == "PASS" and res.diagnosis == [] and res.hint == ""


def _amplify_large(at: float, factor: float) -> Callable[[list[torch.Tensor]], None]:
    """Not clipping: a tensor whose gradient norm exceeds `at` is multiplied by `factor` > 1."""

    def change(ps: list[torch.Tensor]) -> None:
        for p in ps:
            if p.grad is not None and float(p.grad.norm()) > at:
                p.grad.mul_(factor)

    return change


# Two fits over every candidate, twice (about a minute): the full tier.
@pytest.mark.slow
def test_hyperparameters_with_clipping_are_named_together_only_when_clipping_reproduces() -> None:
    """The user's port had the learning rate, epsilon and per-tensor clipping wrong at once: the pair is
    fitted on the steps clipping cannot reach, the threshold on every step, and the three are named
    together. Negative control: the same pair with the large gradients amplified instead (no clipping
    threshold shrinks a gradient up) is named by nothing."""
    clip = torch_port(
        lambda ps: torch.optim.Adam(ps, lr=1e-4, eps=1e-5),
        clip=lambda ps: [torch.nn.utils.clip_grad_norm_([p], 0.3) for p in ps],
    )
    res = diagnose(clip)
    assert res.status == "FAIL" and res.diagnosis[0]["cause"] == "adam.lr+eps+clip.norm_per_tensor", res.hint
    params = res.diagnosis[0]["parameters"]
    assert params["lr"] == pytest.approx(1e-4, rel=1e-3) and params["eps"] == pytest.approx(1e-5, rel=1e-3)
    assert params["max_norm"] == pytest.approx(0.3, rel=0.05)
    amplified = torch_port(lambda ps: torch.optim.Adam(ps, lr=1e-4, eps=1e-5), clip=_amplify_large(0.3, 3.0))
    res = diagnose(amplified)
    assert res.status == "FAIL" and res.diagnosis == [], res.hint
