"""The docs stay true to the code: docs/divergences.md has one section per fault of the catalogue, each
showing the fault's first divergence at the catalogue's stage (regenerate with docs/make_divergences.py),
and every relative link in the README and docs/ points to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from harness.port import available_faults
from harness.stage_names import STAGE_NAMES

ROOT = Path(__file__).resolve().parent.parent
DIVERGENCES = ROOT / "docs" / "divergences.md"


def _sections() -> dict[str, str]:
    text = DIVERGENCES.read_text()
    parts = re.split(r"^## `([^`]+)`.*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _first_divergence(section: str) -> str | None:
    """The first stage whose row in the section's report table is not PASS or SKIP."""
    stages = "|".join(STAGE_NAMES)
    for m in re.finditer(rf"^│ ({stages}) +│ (\w+) ", section, flags=re.M):
        if m[2] not in ("PASS", "SKIP"):
            return m[1]
    return None


def test_the_divergence_catalogue_has_every_fault_at_its_stage() -> None:
    sections = _sections()
    catalogue = {f["name"]: f["stage"] for f in available_faults()} | {"user-port": "config"}
    assert set(sections) == set(catalogue), "docs/divergences.md is stale: run python docs/make_divergences.py"
    stale = {name: (_first_divergence(s), catalogue[name]) for name, s in sections.items()}
    stale = {k: v for k, v in stale.items() if v[0] != v[1]}
    assert not stale, f"docs/divergences.md shows another first stage (shown, expected): {stale}"


def test_every_relative_link_in_the_docs_exists() -> None:
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not missing, missing
