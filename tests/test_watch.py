"""`harness watch`: a change to the port's sources rebuilds it and re-runs the stages that failed, then the
whole diff once they pass; a failed build is shown and waited out. The loop is driven here with a fake
diff and a sleep that edits the watched tree; the command itself runs once (`--once`) on the bundled data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import BUNDLED_DATA, load_port_build
from harness.errors import HarnessError
from harness.watch import Build, changed, loop, snapshot
from tests.needs import burn


def test_a_snapshot_sees_edits_additions_and_removals_outside_build_outputs(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "target").mkdir()
    main_rs = tmp_path / "src" / "main.rs"
    main_rs.write_text("fn main() {}")
    before = snapshot([tmp_path])
    (tmp_path / "target" / "out.o").write_text("built")  # a build output: ignored
    assert changed(before, snapshot([tmp_path])) == []
    main_rs.write_text("fn main() { println!(); }")
    (tmp_path / "src" / "new.rs").write_text("")
    after = snapshot([tmp_path])
    assert changed(before, after) == [str(main_rs), str(tmp_path / "src" / "new.rs")]
    main_rs.unlink()
    assert changed(after, snapshot([tmp_path])) == [str(main_rs)]


def _edit_on_sleep(path: Path):
    edits = iter(range(100))

    def sleep(_: float) -> None:
        path.write_text(f"edit {next(edits)}")

    return sleep


def test_the_failing_stages_run_again_then_the_whole_diff(tmp_path: Path) -> None:
    src = tmp_path / "lib.rs"
    src.write_text("")
    calls: list[list[str] | None] = []
    answers = iter([(1, ["config", "train"]), (1, ["train"]), (0, []), (0, [])])

    def diff(stages: list[str] | None) -> tuple[int, list[str]]:
        calls.append(stages)
        return next(answers)

    said: list[str] = []
    code = loop(None, [tmp_path], diff, said.append, cycles=3, sleep=_edit_on_sleep(src))
    # 1: everything; 2: the two that failed (train still fails); 3: train, which passes, then all again.
    assert calls == [None, ["config", "train"], ["train"], None]
    assert code == 0
    assert any(s.startswith("changed: ") and "lib.rs" in s for s in said)
    assert "the stages that failed pass: diff all" in said


def test_a_failed_build_is_shown_and_nothing_is_diffed(tmp_path: Path) -> None:
    script = tmp_path / "build.sh"
    script.write_text("#!/bin/sh\necho 'error[E0425]: cannot find value `x`'\nexit 101\n")
    script.chmod(0o755)
    said: list[str] = []
    code = loop(Build(str(script), tmp_path), [tmp_path], lambda s: pytest.fail("diffed"), said.append, cycles=1)
    assert code == 2
    assert said[1] == "build failed (exit 101):\nerror[E0425]: cannot find value `x`"


def test_build_and_watch_are_read_from_harness_toml(tmp_path: Path) -> None:
    toml = tmp_path / "harness.toml"
    (tmp_path / "src").mkdir()
    toml.write_text('[port]\nbuild = "cargo build -p my-port"\nwatch = ["src", "harness.toml"]\n')
    assert load_port_build(toml) == ("cargo build -p my-port", [tmp_path / "src", toml])
    toml.write_text("[port]\n")
    assert load_port_build(toml) == (None, [tmp_path])
    toml.write_text('[port]\nwatch = ["nowhere"]\n')
    with pytest.raises(HarnessError, match=r"watch: '.*nowhere' does not exist"):
        load_port_build(toml)
    toml.write_text('[port]\nbuild = ""\n')
    with pytest.raises(HarnessError, match="build must be a non-empty command"):
        load_port_build(toml)


def test_watch_once_builds_then_diffs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    burn()
    toml = tmp_path / "harness.toml"
    flag = tmp_path / "built.flag"
    toml.write_text(
        f'[data]\npath = "{BUNDLED_DATA}"\n\n[train]\nepochs = 3\n\n'
        f"[port]\nbuild = \"{sys.executable} -c \\\"open('built.flag', 'w').close()\\\"\"\n"
    )
    with pytest.raises(SystemExit) as e:
        main(["watch", "--config", str(toml), "--once"])
    out = capsys.readouterr().out
    assert e.value.code == 0, out[-3000:]
    assert flag.is_file()
    assert "diff all" in out and "No divergence" in out


def test_watch_needs_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["watch", "--config", str(tmp_path / "missing.toml"), "--once"])
    assert e.value.code == 2
    assert "watch needs a harness.toml" in capsys.readouterr().err
