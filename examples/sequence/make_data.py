"""Writes sequences.csv: 2,000 sequences of 8 tokens (ids 0-9, uniform, numpy seed 0) and a label that
needs their order: 1 when the last token is larger than the first, else 0. Committed (34 kB); run again
to check it is what this script writes.

  python examples/sequence/make_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("sequences.csv")
ROWS, LENGTH, VOCAB = 2000, 8, 10


def main() -> None:
    tokens = np.random.default_rng(0).integers(0, VOCAB, size=(ROWS, LENGTH))
    label = (tokens[:, -1] > tokens[:, 0]).astype(int)
    header = ",".join([f"t{i}" for i in range(LENGTH)] + ["label"])
    lines = [header] + [",".join(map(str, [*row, y])) for row, y in zip(tokens, label, strict=True)]
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
