from pathlib import Path

import numpy as np
import pytest

from tinygpt4.errors import UserError
from tinygpt4.scaling.fit import (
    bootstrap_power_law,
    fit_chinchilla,
    fit_power_law,
    load_chinchilla_points,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHINCHILLA_CSV = SHARED / "data" / "scaling" / "chinchilla_points.csv"


def _synthetic(a=40.0, b=-0.12, c=2.0, noise=0.0, n=6, seed=0):
    compute = np.logspace(12, 15, n)
    loss = a * compute**b + c
    if noise:
        loss = loss * np.exp(np.random.default_rng(seed).normal(0, noise, n))
    return compute, loss, (lambda x: a * np.asarray(x, dtype=float) ** b + c)


def test_power_law_recovers_known_parameters():
    compute, loss, _ = _synthetic()
    fit = fit_power_law(compute, loss)
    assert fit.b == pytest.approx(-0.12, rel=1e-3)
    assert fit.c == pytest.approx(2.0, rel=1e-3)
    assert fit.a_raw == pytest.approx(40.0, rel=1e-2)
    assert fit(1e17) == pytest.approx(40.0 * 1e17**-0.12 + 2.0, rel=1e-4)


def test_power_law_rejects_bad_points():
    with pytest.raises(UserError):
        fit_power_law([1.0, 2.0], [3.0, 2.0])
    with pytest.raises(UserError):
        fit_power_law([1.0, 2.0, 3.0], [3.0, -2.0, 1.0])


def test_bootstrap_interval_covers_truth():
    compute, loss, truth = _synthetic(noise=0.004, seed=1)
    res = bootstrap_power_law(compute, loss, target_compute=1e17, n_boot=60, seed=0)
    lo, hi = res["intervals"]["prediction"]
    assert lo < truth(1e17) < hi
    assert lo <= res["prediction"] <= hi
    assert hi - lo < 0.2 * truth(1e17)
    b_lo, b_hi = res["intervals"]["b"]
    assert b_lo < -0.12 < b_hi
    again = bootstrap_power_law(compute, loss, target_compute=1e17, n_boot=60, seed=0)
    assert again["intervals"] == res["intervals"]


@pytest.mark.skipif(not CHINCHILLA_CSV.exists(), reason="../shared data not present")
def test_chinchilla_recovery():
    n, d, loss = load_chinchilla_points(CHINCHILLA_CSV)
    assert len(loss) == 240
    # A 32-point corner of the standard 4,500-point grid reaches the same optimum in a fraction of the time.
    grid = {"alpha": (0.5, 1.0), "beta": (0.5, 1.0), "e": (0.0, 0.5), "a": (5.0, 10.0), "b": (5.0, 10.0)}
    fit = fit_chinchilla(n, d, loss, grid=grid)
    published = {"E": 1.82, "A": 478.0, "B": 2143.0, "alpha": 0.347, "beta": 0.367}
    for k, v in published.items():
        assert getattr(fit, k) == pytest.approx(v, rel=0.05), k
