"""The reference's data preparation: pandas load, StandardScaler fit on all rows, sklearn split.

What a file may contain, and the one table both sides must read from it, is harness/csvcheck.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import csvcheck
from harness.config import RunConfig
from harness.csvcheck import Table
from harness.errors import HarnessError


@dataclass
class Prepared:
    table: Table
    train_idx: np.ndarray
    test_idx: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    scale: np.ndarray
    x_train: np.ndarray  # float32
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_table(path: Path, label: str, task: str = "binary") -> Table:
    """pandas' reading of `path` (the user's `pd.read_csv`), after the shared rules (harness/csvcheck.py)
    have accepted the file, and checked against them: a disagreement is the harness's own fault, so it
    stops the run (exit 2) instead of reaching the data stage."""
    import pandas as pd  # pandas and sklearn load on first use: a run whose preparation is cached skips them

    shared = csvcheck.read(path, label, task)
    # compression=None: the rules read plain text whatever the name (F2). Integers beyond int64 are
    # float64 by K1, where pandas would make them uint64 or Python ints.
    floats = {n: "float64" for n, d in zip(shared.feature_names, shared.dtypes, strict=True) if d == "float64"}
    try:
        df = pd.read_csv(path, compression=None, encoding="utf-8", dtype=floats)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise _disagree(path, f"pandas fails: {str(e).strip().splitlines()[-1]}") from e
    x_df = df.drop(columns=[label])
    column = df[label]
    if task != "binary":
        try:
            labels = column.to_numpy(dtype=np.float64).astype(np.float32)
        except (TypeError, ValueError) as e:
            raise _disagree(path, f"label column '{label}'") from e
    elif column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
        labels = np.array([csvcheck.label_value(str(v)) for v in column], dtype=object)
        if any(isinstance(v, str) for v in labels):
            raise _disagree(path, f"label column '{label}'")
        labels = labels.astype(np.float32)
    else:
        labels = (column.to_numpy() == 1).astype(np.float32)
    try:
        features = np.ascontiguousarray(x_df.to_numpy(dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise _disagree(path, "a feature column is not numeric to pandas") from e
    table = Table(list(map(str, x_df.columns)), [str(d) for d in x_df.dtypes], features, labels)
    what = differences(shared, table)
    if what:
        raise _disagree(path, what)
    return table


def differences(a: Table, b: Table) -> str:
    """What differs between two readings of one file ("" when they are the same table)."""
    if a.feature_names != b.feature_names:
        return f"columns {a.feature_names} vs {b.feature_names}"
    if a.dtypes != b.dtypes:
        j = next(j for j, (x, y) in enumerate(zip(a.dtypes, b.dtypes, strict=False)) if x != y)
        return f"column '{a.feature_names[j]}': dtype {a.dtypes[j]} vs {b.dtypes[j]}"
    if a.features.shape != b.features.shape:
        return f"shape {a.features.shape} vs {b.features.shape}"
    # Exact, bit for bit but for the sign of zero: parsing has no arithmetic that could round differently.
    bad = np.argwhere(~((a.features == b.features) | (np.isnan(a.features) & np.isnan(b.features))))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        return f"row {i + 1}, column '{a.feature_names[j]}': {a.features[i, j]!r} vs {b.features[i, j]!r}"
    if not np.array_equal(a.labels, b.labels):
        i = int(np.flatnonzero(a.labels != b.labels)[0])
        return f"row {i + 1}, label: {a.labels[i]} vs {b.labels[i]}"
    return ""


def _disagree(path: Path, what: str) -> HarnessError:
    return HarnessError(
        f"internal error: pandas reads '{path}' differently from the shared CSV rules ({what}); please report it"
    )


def prepare(cfg: RunConfig) -> Prepared:
    """The user's script: scaler fit on ALL rows, then train_test_split(0.2, random_state=42). A config may
    fit the scaler on the training rows only, or use none (cfg.scaler)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    table = load_table(cfg.data, cfg.label, cfg.task)
    if cfg.sample_shape and int(np.prod(cfg.sample_shape)) != table.features.shape[1]:
        raise HarnessError(
            f"[data] sample_shape {list(cfg.sample_shape)} holds {int(np.prod(cfg.sample_shape))} values per sample; "
            f"{cfg.data.name} has {table.features.shape[1]} feature columns"
        )
    if cfg.sample_dtype == "int64":
        from harness.samples import check_ids

        if cfg.scaler != "none":
            raise HarnessError('[data] sample_dtype = "int64" takes the ids as they are: set scaler = "none"')

        check_ids(table.features, table.feature_names)
    n = len(table.labels)
    n_test = int(np.ceil(cfg.test_size * n))
    if not 0 < n_test < n:
        raise HarnessError(f"cannot split {n} rows with test size {cfg.test_size}: one side would be empty")
    idx = np.arange(n)
    train_idx, test_idx = train_test_split(idx, test_size=cfg.test_size, random_state=cfg.split_seed)
    scaler = StandardScaler(with_mean=cfg.scaler != "none", with_std=cfg.scaler != "none")
    scaler.fit(table.features[train_idx] if cfg.scaler == "train" else table.features)
    x_scaled = scaler.transform(table.features)
    if cfg.scaler == "none":
        scaler.mean_, scaler.var_, scaler.scale_ = (
            np.zeros(table.features.shape[1]),
            np.ones(table.features.shape[1]),
            np.ones(table.features.shape[1]),
        )
    # csvcheck's rule P1 keeps the scaler's sums finite; this names the column should it ever not.
    finite = np.isfinite(scaler.mean_) & np.isfinite(scaler.scale_) & np.isfinite(x_scaled).all(axis=0)
    if not finite.all():
        name = table.feature_names[int(np.flatnonzero(~finite)[0])]
        raise HarnessError(f"column '{name}': scaling gives non-finite values; rescale the column")
    return Prepared(
        table=table,
        train_idx=train_idx.astype(np.int64),
        test_idx=test_idx.astype(np.int64),
        mean=scaler.mean_,
        var=scaler.var_,
        scale=scaler.scale_,
        x_train=x_scaled[train_idx].astype(np.float32),
        y_train=table.labels[train_idx],
        x_test=x_scaled[test_idx].astype(np.float32),
        y_test=table.labels[test_idx],
    )
