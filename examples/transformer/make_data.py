"""Writes padded.csv: 2,000 token sequences of 3 to 8 tokens (ids 1-9, uniform, numpy seed 0), each
padded to 8 with the id 0 at its end, and a label that needs their order and the mask: 1 when the last
real token is larger than the first, else 0. A model that attends to the pads, or pools over them, sees
another sequence. Committed (about 34 kB); run again to check it is what this script writes.

  python examples/transformer/make_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("padded.csv")
ROWS, LENGTH, VOCAB, PAD, SHORTEST = 2000, 8, 10, 0, 3


def main() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(SHORTEST, LENGTH + 1, size=ROWS)
    tokens = rng.integers(PAD + 1, VOCAB, size=(ROWS, LENGTH))
    tokens[np.arange(LENGTH) >= lengths[:, None]] = PAD
    label = (tokens[np.arange(ROWS), lengths - 1] > tokens[:, 0]).astype(int)
    header = ",".join([f"t{i}" for i in range(LENGTH)] + ["label"])
    lines = [header] + [",".join(map(str, [*row, y])) for row, y in zip(tokens, label, strict=True)]
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
