"""Writes digits.csv from scikit-learn's bundled digits data (no download): 1,797 rows, 64 pixel
columns (integers 0-16) and the class in `digit`.

    python examples/digits/make_data.py [--out PATH] [--force]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rows() -> list[str]:
    from sklearn.datasets import load_digits

    d = load_digits()
    header = ",".join([f"pixel_{j}" for j in range(d.data.shape[1])] + ["digit"])
    body = [",".join(str(int(v)) for v in x) + f",{int(t)}" for x, t in zip(d.data, d.target, strict=True)]
    return [header, *body]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "digits.csv")
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
