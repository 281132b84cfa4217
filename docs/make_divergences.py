"""Regenerates docs/divergences.md from real runs of the harness (one `diff all` per fault).

python docs/make_divergences.py [--data PATH]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from rich.console import Console

from harness.config import BUNDLED_DATA, RunConfig
from harness.pipeline import run_with
from harness.port import available_faults
from harness.report.terminal import print_report
from harness.stages.base import Context

OUT = Path(__file__).with_name("divergences.md")

INTRO = """# Divergences between a PyTorch model and its Burn port

Each section is one fault from `harness faults list`: what a person porting the model sees, what the
harness reports (captured from `harness diff all --fault NAME` on the bundled data; regenerate with
`python docs/make_divergences.py`), and the fix in Burn. The harness diagnoses from numbers only.

"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=BUNDLED_DATA)
    a = ap.parse_args()
    base = Context(RunConfig(data=a.data))
    faithful = run_with(base)
    parts = [INTRO, f"Faithful port: exit code {faithful.exit_code}, every stage PASS.\n"]
    for f in [
        *available_faults(),
        {
            "name": "user-port",
            "stage": "config",
            "description": "all of the report's faults at once",
            "fix": "all of the fixes",
        },
    ]:
        ctx = Context(base.cfg.with_(fault=f["name"]))
        ctx.adopt_reference(base)
        report = run_with(ctx)
        buf = io.StringIO()
        print_report(report, Console(file=buf, width=140, color_system=None))
        parts.append(f"\n## `{f['name']}` (stage: {f['stage']})\n\n")
        parts.append(f"**What goes wrong.** {_sentence(f['description'])}\n\n")
        symptom = _symptom(report)
        parts.append(f"**What the user sees.** {symptom}\n\n")
        parts.append(f"**What the harness reports** (exit code {report.exit_code}):\n\n```text\n")
        parts.append(buf.getvalue().rstrip() + "\n```\n\n")
        parts.append(f"**Fix in Burn.** {_sentence(f['fix'])}\n")
    OUT.write_text("".join(parts))
    print(f"wrote {OUT}")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _symptom(report) -> str:
    errored = [r for r in report.results if r.status == "ERROR"]
    if errored:
        # The port's own pipeline runs every step; a crash anywhere is what its user meets first.
        return f"The port stops when it reaches the {errored[0].stage} step: {errored[0].error}."
    train = next((r for r in report.results if r.stage == "train"), None)
    metrics = next((r for r in report.results if r.stage == "metrics"), None)
    bits = []
    if train is not None and "epoch_loss_port" in train.metrics:
        losses = train.metrics["epoch_loss_port"]
        bits.append(
            f"epoch losses {losses[0]:.4g} → {losses[-1]:.4g} (reference {train.metrics['epoch_loss_ref'][-1]:.4g})"
        )
    if metrics is not None and "accuracy_port" in metrics.metrics:
        bits.append(
            f"end-to-end test accuracy {metrics.metrics['accuracy_port'][0]:.4f} by the port's own metric "
            f"(reference {metrics.metrics['accuracy_ref'][0]:.4f})"
        )
    return "; ".join(bits) + "." if bits else "nothing obvious."


if __name__ == "__main__":
    main()
