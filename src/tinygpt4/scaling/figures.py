"""The scaling figure: ladder points, the fitted L(C), the target's predicted loss with its interval, and the
actual loss once the target has trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinygpt4.scaling.fit import PowerLaw


def plot_scaling(scaling_dir, out_path=None) -> Path:
    # matplotlib loads here, not with the module: the ladder imports this module in every rung worker, and
    # only the parent process draws
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    d = Path(scaling_dir)
    fit = json.loads((d / "fit.json").read_text())
    outcome_path = d / "outcome.json"
    outcome = json.loads(outcome_path.read_text()) if outcome_path.exists() else None
    p = fit["params"]
    law = PowerLaw(a=p["a"], b=p["b"], c=p["c"], c0=p["c0"])
    pts = fit["points"]
    xs = np.array([q["flops"] for q in pts])
    ys = np.array([q["final_val_loss"] for q in pts])
    c_t = fit["target_flops"]
    pred = fit["predicted_final_loss"]
    lo, hi = fit["predicted_final_loss_interval"]

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    grid = np.logspace(np.log10(xs.min()) - 0.2, np.log10(c_t) + 0.3, 200)
    ax.plot(grid, law(grid), color="#4c72b0", lw=1.5,
            label=f"fit: L = {law.a_raw:.3g}·C^{law.b:.3f} + {law.c:.3g}")
    ax.scatter(xs, ys, color="#4c72b0", zorder=3, label="ladder runs")
    ax.errorbar([c_t], [pred], yerr=[[pred - lo], [hi - pred]], fmt="s", color="#dd8452", capsize=4, zorder=4,
                label=f"predicted {pred:.3f} [{lo:.3f}, {hi:.3f}]")
    if outcome is not None:
        ax.scatter([c_t], [outcome["actual_final_loss"]], marker="*", s=140, color="#c44e52", zorder=5,
                   label=f"actual {outcome['actual_final_loss']:.3f} ({100 * outcome['relative_error']:+.1f}%)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title(f"Predictable scaling: {fit.get('target_preset', 'target')}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out_path) if out_path else d / "scaling.png"
    fig.savefig(out)
    plt.close(fig)
    return out
