"""The bundled dataset's generator: same schema and character as the report's real file.

feature1..feature20 and label; non-negative integer counts with very different ranges (feature3 up to
millions), feature5 a true/false flag, feature9 and feature18..20 small floats, label true/false with
about 54 % true, about 5 % exact duplicate rows, 18,363 rows. Classes are separated through a few
latent factors seen by many features non-linearly, so the reference reaches roughly 90-95 % accuracy.
Deterministic: the same seed writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_ROWS = 18363
N_DUPLICATES = 908
POSITIVE_SHARE = 0.54


def generate(seed: int = 20240601, n_rows: int = N_ROWS, n_duplicates: int = N_DUPLICATES) -> list[str]:
    rng = np.random.default_rng(seed)
    n = n_rows - n_duplicates
    y = rng.random(n) < POSITIVE_SHARE
    sign = np.where(y, 1.0, -1.0)
    # Latent factors: three informative (shifted by class), one nuisance.
    u = rng.normal(size=(n, 4))
    u[:, 0] += 1.25 * sign
    u[:, 1] += 0.85 * sign
    u[:, 2] += 0.55 * sign * (rng.random(n) < 0.7)
    noise = lambda s: rng.normal(scale=s, size=n)  # noqa: E731
    cols: dict[str, np.ndarray] = {}
    cols["feature1"] = rng.poisson(np.exp(4.2 + 0.35 * u[:, 0] + noise(0.2)))
    cols["feature2"] = rng.poisson(np.exp(5.0 + 0.25 * u[:, 1] + noise(0.3)))
    cols["feature3"] = np.minimum(np.exp(12.0 + 0.6 * u[:, 3] + 0.3 * u[:, 0] + noise(0.5)), 5.3e6).astype(np.int64)
    cols["feature4"] = rng.poisson(np.where(u[:, 2] > 0.8, 2.0, 0.05))
    cols["feature5"] = (u[:, 1] + noise(1.0)) > -0.2
    cols["feature6"] = rng.poisson(np.exp(2.3 + 0.3 * u[:, 2]))
    cols["feature7"] = rng.poisson(np.exp(2.7 - 0.2 * u[:, 0] + 0.2 * u[:, 3]))
    cols["feature8"] = rng.poisson(np.exp(2.2 + 0.1 * u[:, 1]))
    cols["feature9"] = np.exp(-8.0 + 0.5 * u[:, 0] + noise(0.4))
    cols["feature10"] = rng.poisson(np.exp(7.8 + 0.4 * u[:, 1] + noise(0.4)))
    cols["feature11"] = rng.poisson(np.exp(6.0 - 0.15 * u[:, 2] + noise(0.3)))
    cols["feature12"] = np.exp(8.5 + 1.2 * u[:, 3] + 0.2 * u[:, 0] + noise(0.8)).astype(np.int64)
    cols["feature13"] = rng.poisson(np.exp(3.7 + 0.1 * u[:, 0]))
    cols["feature14"] = rng.poisson(np.exp(2.8 + 0.05 * u[:, 3]))
    cols["feature15"] = rng.poisson(np.where(u[:, 0] < -1.5, 1.5, 0.1))
    cols["feature16"] = rng.poisson(np.exp(3.2 + 0.2 * u[:, 1] - 0.2 * u[:, 2]))
    cols["feature17"] = rng.poisson(np.exp(3.8 + 0.1 * u[:, 3]))
    cols["feature18"] = 1.0 / (1.0 + rng.poisson(np.exp(3.2 - 0.4 * u[:, 0])))
    cols["feature19"] = 1.0 / (1.0 + rng.poisson(np.exp(5.5 - 0.3 * u[:, 1])))
    cols["feature20"] = rng.poisson(np.exp(2.5 + 0.3 * u[:, 2])).astype(np.float64)
    rows = []
    for i in range(n):
        cells = []
        for name, v in cols.items():
            x = v[i]
            if name == "feature5":
                cells.append("true" if x else "false")
            elif name in ("feature9", "feature18", "feature19"):
                cells.append(f"{float(x):.8g}")
            elif name == "feature20":
                cells.append(f"{float(x):.1f}")
            else:
                cells.append(str(int(x)))
        cells.append("true" if y[i] else "false")
        rows.append(",".join(cells))
    dup = rng.choice(n, size=n_duplicates, replace=False)
    for j in dup:
        rows.insert(int(rng.integers(0, len(rows) + 1)), rows[j])
    header = ",".join([*cols.keys(), "label"])
    return [header, *rows]


def write(path: Path, seed: int = 20240601, force: bool = False) -> int:
    if path.exists() and not force:
        raise FileExistsError(f"'{path}' exists; pass --force to overwrite it")
    lines = generate(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1
