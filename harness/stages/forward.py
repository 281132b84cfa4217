"""forward: every layer's output on the test set, same weights, evaluation mode, by the reference's layer
names (its leaf modules' qualified names, a container's children included: `layers.0`). A model whose
layers hold many values per sample (large images) is compared on the test set's first rows, as many as
FORWARD_VALUES allows, never fewer than FORWARD_MIN_SAMPLES."""

from __future__ import annotations

import numpy as np

from harness.compare import compare, compare_names
from harness.diagnosis import layers
from harness.results import StageResult, result
from harness.stages.base import Context, Stage

# The check of the layer names (a space: no qualified module name has one, so it never shadows a layer).
NAMES_CHECK = "layer names"
# Layer outputs held per side, over every layer and sample (float32: 64 MiB): the test set is cut to fit.
# Every example here fits whole (the digits CNN holds 5,130 values a sample, 360 samples); a 3x224x224
# image model's layers hold millions a sample, and its forward compares FORWARD_MIN_SAMPLES.
FORWARD_VALUES = 1 << 24
# A cut never leaves fewer samples: enough for a layer's statistics and the diagnosis's evidence.
FORWARD_MIN_SAMPLES = 64


def forward_samples(n_test: int, layer_shapes: dict[str, tuple[int, ...]]) -> int:
    """How many of the test set's rows the forward stage compares."""
    per_sample = sum(int(np.prod(s)) if s else 1 for s in layer_shapes.values()) or 1
    return min(n_test, max(FORWARD_MIN_SAMPLES, FORWARD_VALUES // per_sample))


def run(ctx: Context) -> StageResult:
    x_all = ctx.prepared.x_test
    x = x_all[: forward_samples(len(x_all), ctx.reference.layer_shapes)]
    params = ctx.forward_params
    ref = ctx.reference.forward(params, x)
    got = ctx.port.forward(params, x)
    last = list(ref)[-1]
    if ctx.reference.takes_logits() and last not in got:
        # A model that returns logits has no output sigmoid: its loss applies it (the loss stage compares
        # that), so the forward is compared up to the logits.
        ref.pop(last)
    outputs_only = ctx.cfg.layers == "output"
    if outputs_only:
        # `[port] layers = "output"`: the port's forward as written, its model's output alone; the layers
        # before it are not localized.
        last = list(ref)[-1]
        ref = {last: ref[last]}
    unreported = [] if outputs_only else _unreported(ctx, list(ref), got)
    for name in unreported:
        ref.pop(name)
    ref, got = _in_sample_shapes(ref, got, ctx.reference.layer_shapes)
    tol = ctx.tol("forward")
    names = compare_names(NAMES_CHECK, "layer", list(ref), list(got))
    checks = [names] + [compare(layer, ref[layer], got[layer], tol) for layer in ref if layer in got]
    first = next((c for c in checks[1:] if not c.passed), None)
    unlocalized = 'the port reports its model\'s output only ([port] layers = "output")' if outputs_only else ""
    if unreported:
        unlocalized = f"not reported by the port, so compared through the layers after them: {', '.join(unreported)}"
    if first is None:
        hint = "; ".join(h for h in (names.reason, unlocalized) if h)
        return result(
            "forward",
            checks,
            hint,
            samples=len(x),
            test_samples=len(x_all),
            first_divergent_layer=None,
            unreported_layers=unreported,
        )
    layer = first.name
    causes = layers.diagnose(ctx.reference, params, x, got, layer, tol)
    if causes:
        hint = f"first divergent layer: {layer}; {causes[0].sentence()}"
    else:
        g = got[layer]
        seen = (
            f"{int((g < 0).sum())} negative values" if (g < 0).any() else f"values from {g.min():.3g} to {g.max():.3g}"
        )
        kind = next((f" ({lay.kind})" for lay in ctx.reference.layers if lay.name == layer), "")
        hint = (
            f"first divergent layer: {layer}{kind}, every earlier layer within tolerance; no candidate cause "
            f"reproduces it ({seen})"
        )
    if outputs_only:
        hint = f"{hint} ({unlocalized}: an earlier layer may be where it starts)"
    order = ctx.reference.layer_names
    before = [n for n in unreported if order.index(n) < order.index(layer)]
    # The unreported layers since the last reported one before it: where the divergence may start.
    reported_before = [n for n in ref if order.index(n) < order.index(layer)]
    since = [n for n in before if not reported_before or order.index(n) > order.index(reported_before[-1])]
    if since:
        hint = f"{hint} (the port does not report {', '.join(since)} before it: the divergence may start there)"
    elif unreported:
        hint = f"{hint}; {unlocalized}"
    if len(x) < len(x_all):
        hint = f"{hint} (on the test set's first {len(x)} of {len(x_all)} samples)"
    if not names.passed:
        hint = f"{names.reason}; {hint}"
    return result(
        "forward",
        checks,
        hint,
        diagnosis=[c.to_dict() for c in causes],
        samples=len(x),
        test_samples=len(x_all),
        first_divergent_layer=layer,
        unreported_layers=unreported,
    )


def _unreported(ctx: Context, order: list[str], got: dict[str, np.ndarray]) -> list[str]:
    """The reference's layers the port leaves out of its forward that hold no parameter or buffer and are
    not the model's output: an activation, dropout, a flatten or a pooling the port computes as a function
    (Burn's `relu(x)`, not a module). Those are compared through the layers after them. A missing layer
    with parameters, or a missing output, stays a divergence of the layer names."""
    owned = [n.rpartition(".")[0] for n in (*ctx.reference.param_names, *ctx.reference.buffer_names)]

    def holds(layer: str) -> bool:
        return any(o == layer or o.startswith(layer + ".") for o in owned)

    return [n for n in order[:-1] if n not in got and not holds(n)]


def _in_sample_shapes(
    ref: dict[str, np.ndarray], got: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Both sides' layer outputs in each layer's own per-sample shape (`[n, 16, 8, 8]` for a Conv2d), so a
    difference is located by channel and position, and a port whose layer has another shape (`[n, 8, 8,
    16]`, channels last; `[n, 16, 6, 6]`, no padding) fails on that shape. A port that reports a layer
    flat (`[n, values]`) is read in the reference's shape."""
    ref_out: dict[str, np.ndarray] = {}
    got_out = dict(got)
    for layer, r in ref.items():
        shape = shapes.get(layer, ())
        r = np.asarray(r)
        if shape and r.size == len(r) * int(np.prod(shape)):
            r = r.reshape(len(r), *shape)
        ref_out[layer] = r
        g = got.get(layer)
        if g is not None:
            g = np.asarray(g)
            if g.ndim == 1:
                g = g.reshape(len(g), 1)
            if g.ndim == 2 and r.ndim > 2 and g.size == r.size:
                g = g.reshape(r.shape)
            got_out[layer] = g
    return ref_out, got_out


STAGE = Stage("forward", "per-sample outputs and per-layer activations", run)
