"""Scaling-law fits: L(C) = a*C^b + c for the ladder, and L(N, D) = E + A/N^alpha + B/D^beta (Chinchilla).

Both fits minimise a Huber loss on log residuals (log L_pred - log L_obs) with L-BFGS from a grid of
starting points and keep the best, the recipe of Hoffmann et al. (2022) and Besiroglu et al. (2024).
The log of a sum of power laws is written as a log-sum-exp of terms that are linear in the parameters,
which keeps the problem well conditioned across many orders of magnitude of compute.
"""

from __future__ import annotations

import csv
import ctypes
import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from tinygpt4.errors import UserError

# ---------------------------------------------------------------------------------------------------------
# Shared pieces


_BLAS_THREAD_FUNCS = [
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
]


@contextmanager
def _one_blas_thread():
    """Run with the loaded OpenBLAS libraries on one thread.

    L-BFGS-B makes thousands of BLAS calls on vectors of three to five numbers; with several BLAS threads
    each call pays a thread hand-off, and once PyTorch's OpenMP runtime is loaded beside it those hand-offs
    get dramatically slower (a 60-start fit went from 0.1 s to 10 s). Linux only; elsewhere a no-op."""
    restore = []
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower()})
        for path in paths:
            lib = ctypes.CDLL(path)
            for get, set_ in _BLAS_THREAD_FUNCS:
                if hasattr(lib, get) and hasattr(lib, set_):
                    n = int(getattr(lib, get)())
                    getattr(lib, set_)(1)
                    restore.append((getattr(lib, set_), n))
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        yield
    finally:
        for set_, n in restore:
            set_(n)


def _blas_single(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper


def _huber(r: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Sum of Huber losses of r and the derivative of each term with respect to its r."""
    a = np.abs(r)
    quad = a <= delta
    value = np.where(quad, 0.5 * r * r, delta * (a - 0.5 * delta)).sum()
    return float(value), np.clip(r, -delta, delta)


def _best_of(objective, starts: Iterable[Sequence[float]], bounds=None) -> tuple[np.ndarray, float]:
    best_x, best_f = None, math.inf
    for x0 in starts:
        res = minimize(objective, np.asarray(x0, dtype=float), jac=True, method="L-BFGS-B", bounds=bounds)
        if np.all(np.isfinite(res.x)) and res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    if best_x is None:
        raise RuntimeError("no starting point converged")
    return best_x, best_f


# ---------------------------------------------------------------------------------------------------------
# L(C) = a * C^b + c


@dataclass
class PowerLaw:
    """L(C) = a * (C / c0)^b + c; a and c in loss units, c0 the compute the fit was normalised by."""

    a: float
    b: float
    c: float
    c0: float

    def __call__(self, compute) -> np.ndarray:
        x = np.asarray(compute, dtype=float) / self.c0
        return self.a * x**self.b + self.c

    @property
    def a_raw(self) -> float:
        """a in un-normalised units: L = a_raw * C^b + c."""
        return self.a * self.c0 ** (-self.b)

    def to_dict(self) -> dict:
        return {**asdict(self), "a_raw": self.a_raw}


_B_BOUNDS = (-3.0, -1e-4)
_LOG_FLOOR = -30.0


def _power_law_objective(x: np.ndarray, log_l: np.ndarray, delta: float):
    def f(theta):
        la, b, lc = theta
        t1 = la + b * x
        lse = np.logaddexp(t1, lc)
        w1 = np.exp(t1 - lse)
        val, g = _huber(lse - log_l, delta)
        return val, np.array([(g * w1).sum(), (g * w1 * x).sum(), (g * (1 - w1)).sum()])

    return f


def _power_law_starts(loss: np.ndarray) -> list[tuple[float, float, float]]:
    lo, hi = float(loss.min()), float(loss.max())
    starts = []
    for frac_c in (0.0, 0.3, 0.6, 0.8, 0.95):
        c = max(frac_c * lo, 1e-9)
        for b in (-0.03, -0.1, -0.3, -1.0):
            for scale in (0.5, 1.0, 2.0):
                a = max(scale * (hi - c), 1e-9)
                starts.append((math.log(a), b, math.log(c)))
    return starts


def _check_points(compute, loss) -> tuple[np.ndarray, np.ndarray]:
    compute = np.asarray(compute, dtype=float).ravel()
    loss = np.asarray(loss, dtype=float).ravel()
    if compute.shape != loss.shape:
        raise UserError(f"compute and loss differ in length ({compute.size} vs {loss.size})")
    if compute.size < 3:
        raise UserError(f"a power law with an offset needs at least 3 points, got {compute.size}")
    if not (np.all(compute > 0) and np.all(loss > 0) and np.all(np.isfinite(compute)) and np.all(np.isfinite(loss))):
        raise UserError("compute and loss must be positive and finite")
    return compute, loss


@_blas_single
def fit_power_law(compute, loss, *, delta: float = 1e-3, c0: float | None = None, starts=None) -> PowerLaw:
    """Fit L(C) = a*C^b + c with b < 0 and a, c > 0.

    Compute is divided by c0 (default: the smallest compute) so the parameters are O(1). The objective is
    the Huber loss (threshold `delta`) of log residuals over parameters (log a, b, log c), minimised with
    L-BFGS-B from every point of a grid; the best minimum wins.
    """
    compute, loss = _check_points(compute, loss)
    c0 = float(compute.min()) if c0 is None else float(c0)
    x, log_l = np.log(compute / c0), np.log(loss)
    objective = _power_law_objective(x, log_l, delta)
    bounds = [(_LOG_FLOOR, 20.0), _B_BOUNDS, (_LOG_FLOOR, 20.0)]
    theta, _ = _best_of(objective, starts if starts is not None else _power_law_starts(loss), bounds)
    la, b, lc = theta
    return PowerLaw(a=math.exp(la), b=float(b), c=math.exp(lc), c0=c0)


@_blas_single
def bootstrap_power_law(
    compute,
    loss,
    *,
    target_compute: float | None = None,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.9,
    delta: float = 1e-3,
) -> dict:
    """Point estimate plus percentile bootstrap intervals (resample points with replacement, refit).

    Returns {"fit", "intervals": {"a","b","c"[, "prediction"]}, "prediction", "samples"}. Resamples with
    fewer than 3 distinct compute values cannot pin down three parameters and are drawn again.
    """
    compute, loss = _check_points(compute, loss)
    fit = fit_power_law(compute, loss, delta=delta)
    base = (math.log(fit.a), fit.b, math.log(fit.c))
    # Each refit starts from the full-data optimum and from a coarse grid, so a resample whose optimum moved
    # far still finds it, at a fraction of the full grid's cost.
    coarse = _power_law_starts(loss)[::15]
    rng = np.random.default_rng(seed)
    n = compute.size
    rows = []
    while len(rows) < n_boot:
        idx = rng.integers(0, n, size=n)
        if np.unique(compute[idx]).size < 3:
            continue
        f = fit_power_law(compute[idx], loss[idx], delta=delta, c0=fit.c0, starts=[base, *coarse])
        row = [f.a, f.b, f.c]
        if target_compute is not None:
            row.append(float(f(target_compute)))
        rows.append(row)
    samples = np.array(rows)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    names = ["a", "b", "c"] + (["prediction"] if target_compute is not None else [])
    intervals = {
        k: [float(np.percentile(samples[:, i], lo_q)), float(np.percentile(samples[:, i], hi_q))]
        for i, k in enumerate(names)
    }
    out = {"fit": fit, "intervals": intervals, "level": level, "samples": samples}
    if target_compute is not None:
        out["prediction"] = float(fit(target_compute))
    return out


# ---------------------------------------------------------------------------------------------------------
# L(N, D) = E + A / N^alpha + B / D^beta


@dataclass
class ChinchillaFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __call__(self, n, d) -> np.ndarray:
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def to_dict(self) -> dict:
        return asdict(self)


CHINCHILLA_GRID = {
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
}


@_blas_single
def fit_chinchilla(n, d, loss, *, delta: float = 1e-3, grid: dict | None = None) -> ChinchillaFit:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta by Huber loss on log residuals.

    log L_pred = LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b, E = e^e; L-BFGS from every
    point of `grid` (default: the grid of Hoffmann et al., 4,500 starting points), best minimum kept.
    """
    log_n = np.log(np.asarray(n, dtype=float))
    log_d = np.log(np.asarray(d, dtype=float))
    log_l = np.log(np.asarray(loss, dtype=float))

    def objective(theta):
        a, b, e, alpha, beta = theta
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        lse = logsumexp(terms, axis=0)
        w = np.exp(terms - lse)
        val, g = _huber(lse - log_l, delta)
        return val, np.array(
            [
                (g * w[0]).sum(),
                (g * w[1]).sum(),
                (g * w[2]).sum(),
                -(g * w[0] * log_n).sum(),
                -(g * w[1] * log_d).sum(),
            ]
        )

    g = grid or CHINCHILLA_GRID
    starts = [
        (a, b, e, al, be)
        for al, be, e, a, b in itertools.product(g["alpha"], g["beta"], g["e"], g["a"], g["b"])
    ]
    theta, _ = _best_of(objective, starts)
    a, b, e, alpha, beta = (float(v) for v in theta)
    return ChinchillaFit(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta)


def load_chinchilla_points(path, *, drop_highest: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D, loss) from a CSV with columns `Model Size`, `Training FLOP`, `loss`; D = C / (6N).

    The `drop_highest` points with the largest loss are removed (outliers from digitisation of the
    smallest runs, as in the replication)."""
    path = Path(path)
    n, c, loss = [], [], []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"Model Size", "Training FLOP", "loss"} - set(reader.fieldnames or ())
        if missing:
            raise UserError(f"{path}: missing columns {sorted(missing)}")
        for i, row in enumerate(reader, start=2):
            try:
                n.append(float(row["Model Size"]))
                c.append(float(row["Training FLOP"]))
                loss.append(float(row["loss"]))
            except ValueError as e:
                raise UserError(f"{path}:{i}: {e}") from None
    n_arr, c_arr, l_arr = np.array(n), np.array(c), np.array(loss)
    if drop_highest:
        keep = np.argsort(l_arr)[: max(l_arr.size - drop_highest, 0)]
        keep.sort()
        n_arr, c_arr, l_arr = n_arr[keep], c_arr[keep], l_arr[keep]
    return n_arr, c_arr / (6 * n_arr), l_arr
