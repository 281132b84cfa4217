"""The reference's data preparation: pandas load, StandardScaler fit on all rows, sklearn split.

Validation mirrors the port's so that bad input fails the same way on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from harness.config import RunConfig
from harness.errors import HarnessError


@dataclass
class Table:
    feature_names: list[str]
    dtypes: list[str]
    features: np.ndarray  # float64 [n, d]
    labels: np.ndarray  # float32 [n], 0/1


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


_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


def load_table(path: Path, label: str) -> Table:
    if not Path(path).is_file():
        raise HarnessError(f"data file '{path}' not found")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as e:
        raise HarnessError(f"data file '{path}' is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise HarnessError(f"malformed CSV in '{path}': {str(e).strip().splitlines()[-1]}") from e
    if label not in df.columns:
        raise HarnessError(f"label column '{label}' not found in '{path}'; columns are: {', '.join(df.columns)}")
    if len(df) == 0:
        raise HarnessError(f"data file '{path}' has a header but no rows")
    if df.shape[1] < 2:
        raise HarnessError(f"data file '{path}' has no feature columns")
    nulls = df.isna()
    if nulls.to_numpy().any():
        row, col = np.argwhere(nulls.to_numpy())[0]
        raise HarnessError(f"line {row + 2}, column '{df.columns[col]}': empty cell")
    y_raw = df[label]
    values = pd.unique(y_raw.astype(str))
    if len(values) > 2 or not all(v in _TRUE | _FALSE or _is01(v) for v in values):
        shown = ", ".join(map(str, values[:5])) + (", ..." if len(values) > 5 else "")
        raise HarnessError(
            f"label column '{label}' must be binary (true/false or 0/1); found {len(values)} distinct values: {shown}"
        )
    x_df = df.drop(columns=[label])
    dtypes = []
    for name in x_df.columns:
        col = x_df[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            bad = next((v for v in col if not _is_number(v)), col.iloc[0])
            row = int(np.flatnonzero((col == bad).to_numpy())[0])
            raise HarnessError(f"line {row + 2}, column '{name}': '{bad}' is not a number or true/false")
        dtypes.append(str(col.dtype))
    features = np.ascontiguousarray(x_df.to_numpy(dtype=np.float64))
    if not np.isfinite(features).all():
        row, col = np.argwhere(~np.isfinite(features))[0]
        raise HarnessError(f"line {row + 2}, column '{x_df.columns[col]}': not a finite number")
    labels = y_raw.astype(str).isin(_TRUE | {"1", "1.0"}).to_numpy(dtype=np.float32)
    return Table(list(map(str, x_df.columns)), dtypes, features, labels)


def _is01(v: str) -> bool:
    try:
        return float(v) in (0.0, 1.0)
    except ValueError:
        return False


def _is_number(v: object) -> bool:
    try:
        float(str(v))
        return True
    except ValueError:
        return False


def prepare(cfg: RunConfig) -> Prepared:
    """The user's script: scaler fit on ALL rows, then train_test_split(0.2, random_state=42)."""
    table = load_table(cfg.data, cfg.label)
    n = len(table.labels)
    n_test = int(np.ceil(cfg.test_size * n))
    if not 0 < n_test < n:
        raise HarnessError(f"cannot split {n} rows with test size {cfg.test_size}: one side would be empty")
    scaler = StandardScaler()
    x_scaled = scaler.fit_transform(table.features)
    idx = np.arange(n)
    train_idx, test_idx = train_test_split(idx, test_size=cfg.test_size, random_state=cfg.split_seed)
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
