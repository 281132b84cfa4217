"""Candidate causes for a split that differs: sklearn's train_test_split replayed with one change.

Evidence: the port's train and test row indices, in order, exactly.
"""

from __future__ import annotations

import math

import numpy as np

from harness.diagnosis import Candidate, Cause, explain

# Seeds tried for "another seed": the small integers people type.
SEEDS = range(0, 1025)


def _sklearn(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split  # seconds to import; only a failing split needs it

    train, test = train_test_split(np.arange(n), test_size=test_size, random_state=seed)
    return np.asarray(train), np.asarray(test)


def _rounded_down(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.RandomState(seed).permutation(n)
    k = math.floor(test_size * n)
    return perm[k:], perm[:k]


def _unshuffled(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n_test = math.ceil(test_size * n)
    return np.arange(n - n_test), np.arange(n - n_test, n)


def _roles_swapped(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.RandomState(seed).permutation(n)
    n_train = n - math.ceil(test_size * n)
    return perm[:n_train], perm[n_train:]


def repeat_causes(
    first: tuple[np.ndarray, np.ndarray],
    again: tuple[np.ndarray, np.ndarray],
    other_seed: tuple[np.ndarray, np.ndarray],
) -> tuple[list[Cause], list[Cause]]:
    """Causes seen in the port's own split asked again: with the same seed (a split that changes from call
    to call is unseeded) and with another seed (a split that stays the same ignores the seed). Direct
    observations of the port, no replay needed; asked only of a split that already differs from sklearn's.
    Returns (unseeded, seed ignored): the first explains everything before any replay; the second is true
    beside a replay that names how (file order, sklearn with a fixed seed of the port's own), after it."""

    def same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
        return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))

    evidence = "the port's split asked twice with the same seed, and once with another"
    if not same(first, again):
        moved = len(set(np.asarray(first[1]).tolist()) ^ set(np.asarray(again[1]).tolist())) // 2
        what = (
            f"an unseeded split: the same call gave another split ({moved} test rows changed); the port "
            "shuffles with a generator it does not seed from the split's seed (rand::thread_rng, or a fresh "
            "unseeded StdRng)"
        )
        return [Cause("split.unseeded", what, {}, 0.0, evidence)], []
    if same(first, other_seed):
        what = "a split that ignores the seed: another seed gave the same rows (a seed of its own, or none passed on)"
        return [], [Cause("split.seed_ignored", what, {}, 0.0, evidence)]
    return [], []


def diagnose(
    n: int, test_size: float, seed: int, labels: np.ndarray, train: np.ndarray, test: np.ndarray
) -> list[Cause]:
    def err(split: tuple[np.ndarray, np.ndarray]) -> float:
        a, b = split
        same = np.array_equal(a, train) and np.array_equal(b, test)
        return 0.0 if same else math.inf

    def other_seed() -> tuple[float, int]:
        for s in SEEDS:
            if s != seed and err(_sklearn(n, test_size, s)) == 0:
                return 0.0, s
        return math.inf, -1

    def stratified() -> float:
        from sklearn.model_selection import train_test_split

        a, b = train_test_split(np.arange(n), test_size=test_size, random_state=seed, stratify=labels)
        return err((np.asarray(a), np.asarray(b)))

    found_seed = other_seed()
    candidates = [
        Candidate(
            "split.no_shuffle", "rows split in file order (no shuffle)", lambda _: err(_unshuffled(n, test_size, seed))
        ),
        Candidate(
            "split.rounded_down",
            "the test size rounded down (sklearn rounds up)",
            lambda _: err(_rounded_down(n, test_size, seed)),
        ),
        Candidate(
            "split.roles_swapped",
            "the permutation's first rows taken for training (sklearn takes them for test)",
            lambda _: err(_roles_swapped(n, test_size, seed)),
        ),
        Candidate("split.stratified", "a stratified split (stratify=labels)", lambda _: stratified()),
    ]
    found = explain(candidates, "the train and test row indices, in order")
    if found_seed[0] == 0.0:
        found.append(
            Cause(
                "split.seed",
                "sklearn's split with another seed",
                {"seed": float(found_seed[1])},
                0.0,
                "the train and test row indices, in order",
            )
        )
    return found
