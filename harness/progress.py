"""Progress for the long parts of a run: the trainings in the train stage (reference, envelope runs,
port), the stages themselves, and the runs of `faults check`.

Live only on an interactive terminal. When stdout is piped or CI is set, nothing is drawn at all:
rich would otherwise print each bar's final state into the log, one line per training.

Stages report through `current()` rather than a parameter, so the pipeline's signatures stay as they
are and code that runs without the CLI (tests, scripts) gets the silent tracker. The tracker is a
module global, not a context variable, so work moved to a thread still reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

OnEpoch = Callable[[int, float], None]


def interactive(console: Console) -> bool:
    """True when a person is watching: a real terminal, and not a CI job (CI=true, or any CI value)."""
    ci = os.environ.get("CI", "").strip().lower()
    if ci and ci not in ("0", "false", "no"):
        return False
    return console.is_terminal and not console.is_dumb_terminal


def _ignore(epoch: int, loss: float) -> None:
    return None


class Tracker:
    """The silent tracker: every call is accepted and does nothing."""

    def stage(self, name: str, index: int, total: int) -> None:
        return None

    @contextmanager
    def epochs(self, label: str, total: int) -> Iterator[OnEpoch]:
        yield _ignore

    @contextmanager
    def runs(self, label: str, total: int) -> Iterator[Callable[[str], None]]:
        yield lambda name: None


class LiveTracker(Tracker):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._stage: Any = None

    def stage(self, name: str, index: int, total: int) -> None:
        desc = f"stage [bold]{name}[/] ({index}/{total})"
        if self._stage is None:
            self._stage = self.progress.add_task(desc, total=total, completed=index - 1)
        else:
            self.progress.update(self._stage, description=desc, completed=index - 1, total=total)

    @contextmanager
    def epochs(self, label: str, total: int) -> Iterator[OnEpoch]:
        task = self.progress.add_task(f"  {label}", total=total)

        def on_epoch(epoch: int, loss: float) -> None:
            self.progress.update(task, completed=epoch, description=f"  {label} · loss {loss:.5f}")

        try:
            yield on_epoch
        finally:
            # A finished training leaves the display: only what is still running stays on screen.
            self.progress.remove_task(task)

    @contextmanager
    def runs(self, label: str, total: int) -> Iterator[Callable[[str], None]]:
        task = self.progress.add_task(label, total=total)
        done = -1

        def advance(name: str) -> None:
            nonlocal done
            done += 1
            self.progress.update(task, completed=done, description=f"{label}: [bold]{name}[/]")
            # Each run starts its stages afresh.
            if self._stage is not None:
                self.progress.remove_task(self._stage)
                self._stage = None

        try:
            yield advance
        finally:
            self.progress.remove_task(task)


_SILENT = Tracker()
_current: Tracker = _SILENT


def current() -> Tracker:
    return _current


@contextmanager
def live(console: Console) -> Iterator[Tracker]:
    """Show progress on `console` while the block runs, if a person is watching; nests (the outer
    display is reused) and is transient (gone when the block ends, before the report prints)."""
    global _current
    if _current is not _SILENT or not interactive(console):
        yield _current
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tracker = LiveTracker(progress)
    with progress:
        _current = tracker
        try:
            yield tracker
        finally:
            _current = _SILENT
