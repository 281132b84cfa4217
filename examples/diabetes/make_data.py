"""Writes diabetes.csv from scikit-learn's bundled diabetes data (no download), unscaled: 442 patients,
10 baseline measurements (age, sex, body mass index, blood pressure, six serum values) and `progression`,
a measure of the disease's progression one year later (25 to 346).

    python examples/diabetes/make_data.py [--out PATH] [--force]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rows() -> list[str]:
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    header = ",".join([*d.feature_names, "progression"])
    body = [",".join(f"{v:g}" for v in x) + f",{t:g}" for x, t in zip(d.data, d.target, strict=True)]
    return [header, *body]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "diabetes.csv")
    ap.add_argument("--force", action="store_true", help="overwrite an existing file")
    a = ap.parse_args()
    if a.out.exists() and not a.force:
        print(f"error: {a.out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    a.out.write_text("\n".join(rows()) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
