"""`harness watch`: rebuild the port and re-run the stages that failed, on every change to its sources.

The loop a user runs while fixing a port one bug at a time: the port's build command (`[port] build` in
harness.toml, run in the file's directory), then the stages that failed last time (all of them the first
time, and again once the failing ones pass, to show nothing else broke). The reference side comes from
the reference cache, so a cycle costs the port's side and the comparisons. A build that fails is shown
and the loop waits for the next change.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# Directories never watched: build outputs, caches and version control change on every build or run.
IGNORED = frozenset({"target", ".git", ".harness-cache", "__pycache__", ".venv", "node_modules", "reports"})
# Lines of a failed build's output shown.
BUILD_TAIL = 20

Snapshot = dict[str, tuple[int, int]]


def snapshot(paths: Iterable[Path]) -> Snapshot:
    """(mtime in ns, size) of every file under `paths` (files or directories), outside IGNORED."""
    out: Snapshot = {}
    for root in paths:
        if root.is_file():
            st = root.stat()
            out[str(root)] = (st.st_mtime_ns, st.st_size)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in IGNORED)
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    st = os.stat(p)
                except OSError:  # removed while walking
                    continue
                out[p] = (st.st_mtime_ns, st.st_size)
    return out


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """Files added, removed or modified between two snapshots, sorted."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


@dataclass(frozen=True)
class Build:
    """A port's build command and the directory it runs in."""

    cmd: str
    cwd: Path

    def run(self) -> tuple[int, str]:
        """(exit code, the last BUILD_TAIL lines of its output)."""
        try:
            done = subprocess.run(
                shlex.split(self.cmd), cwd=self.cwd, capture_output=True, text=True, check=False, timeout=3600
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return 127, str(e)
        lines = (done.stdout + done.stderr).strip().splitlines()
        return done.returncode, "\n".join(lines[-BUILD_TAIL:])


def cycle(
    stages: list[str] | None, diff: Callable[[list[str] | None], tuple[int, list[str]]], say: Callable[[str], None]
) -> tuple[int, list[str] | None]:
    """One diff: `stages` (None: all). When the stages re-run all pass, the whole diff follows at once (a
    fix may have broken another stage). Returns the exit code and what the next cycle runs: the stages
    that failed, or all (None) when none did."""
    say("diff " + ("all" if stages is None else ", ".join(stages)))
    code, failing = diff(stages)
    if stages is not None and not failing:
        say("the stages that failed pass: diff all")
        code, failing = diff(None)
    return code, (failing or None)


def loop(
    build: Build | None,
    paths: list[Path],
    diff: Callable[[list[str] | None], tuple[int, list[str]]],
    say: Callable[[str], None],
    interval: float = 1.0,
    cycles: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Build, diff, then wait for a change to `paths` and do it again. `diff(stages)` runs those stages
    (None: all) and returns (exit code, the stages that failed). Returns the last cycle's exit code (2
    for a failed build) once `cycles` cycles have run (None: until interrupted)."""
    stages: list[str] | None = None
    done = 0
    while True:
        code = 0
        if build is not None:
            say(f"build: {build.cmd}")
            rc, tail = build.run()
            if rc != 0:
                say(f"build failed (exit {rc}):\n{tail}")
                code = 2
        # After the build (which may write in the watched tree), before the diff (an edit made while it
        # runs starts the next cycle).
        seen = snapshot(paths)
        if code != 2:
            code, stages = cycle(stages, diff, say)
        done += 1
        if cycles is not None and done >= cycles:
            return code
        say(f"watching {', '.join(str(p) for p in paths)} (Ctrl-C to stop)")
        while True:
            sleep(interval)
            now = snapshot(paths)
            diffs = changed(seen, now)
            if diffs:
                more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
                say(f"changed: {', '.join(diffs[:3])}{more}")
                break
