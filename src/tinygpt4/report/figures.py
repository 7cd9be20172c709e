"""The report's figures: small PNGs drawn with matplotlib's Agg backend (no display needed).

Each function takes plain data (already read from the run's files), writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
DPI = 110


def _save(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


save = _save  # for section modules that draw their own figure


def loss_curves(logs: dict[str, list[dict]], out: Path) -> Path:
    """One panel per stage: training loss by step, validation loss as markers."""
    stages = [s for s, lines in logs.items() if lines]
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        train = [(r["step"], r["loss"]) for r in logs[stage] if "loss" in r and "step" in r]
        val = [(r["step"], r["val_loss"]) for r in logs[stage] if "val_loss" in r and "step" in r]
        if train:
            ax.plot(*zip(*train), color=COLORS[0], lw=1.0, label="train loss")
        if val:
            ax.plot(*zip(*val), "o-", color=COLORS[1], ms=3, lw=1.0, label="validation loss")
        ax.set_title(stage)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out)


def grouped_bars(groups: list[str], series: dict[str, list[float | None]], out: Path, *, title: str,
                 ylabel: str, chance: float | None = None, horizontal: bool = False, ylim=(0, 1)) -> Path:
    """Bars for each group (x axis), one colour per series; None values are left out."""
    n_series = max(1, len(series))
    width = 0.8 / n_series
    size = (max(4.5, 0.9 * len(groups) * max(1, n_series / 2) + 1.5), 3.4)
    if horizontal:
        size = (6.0, max(2.5, 0.35 * len(groups) * n_series + 1.2))
    fig, ax = plt.subplots(figsize=size)
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (n_series - 1) / 2) * width for i, v in enumerate(values) if v is not None]
        vs = [v for v in values if v is not None]
        if horizontal:
            bars = ax.barh(xs, vs, height=width, color=COLORS[k % len(COLORS)], label=name)
        else:
            bars = ax.bar(xs, vs, width=width, color=COLORS[k % len(COLORS)], label=name)
        ax.bar_label(bars, labels=[f"{100 * v:.0f}" for v in vs], fontsize=7, padding=1)
    if horizontal:
        ax.set_yticks(range(len(groups)), groups)
        ax.invert_yaxis()
        ax.set_xlim(*ylim)
        ax.set_xlabel(ylabel)
        if chance is not None:
            ax.axvline(chance, color="black", ls="--", lw=0.8, label=f"chance ({100 * chance:.0f}%)")
    else:
        ax.set_xticks(range(len(groups)), groups, rotation=20 if len(groups) > 5 else 0, ha="right"
                      if len(groups) > 5 else "center")
        ax.set_ylim(*ylim)
        ax.set_ylabel(ylabel)
        if chance is not None:
            ax.axhline(chance, color="black", ls="--", lw=0.8, label=f"chance ({100 * chance:.0f}%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x" if horizontal else "y")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, out)


def reliability_diagrams(panels: list[dict], out: Path, ncols: int | None = None) -> Path:
    """Reliability diagrams side by side. Each panel: {"title", "bins": [{"lo","hi","n","conf","acc"}],
    "ece": float | None}. Bars show accuracy per confidence bin; the diagonal is perfect calibration."""
    n = len(panels)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.3 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, p in zip(axes.flat, panels):
        bins = p["bins"]
        ax.plot([0, 1], [0, 1], ls="--", color="black", lw=0.8)
        if bins:
            centers = [(b["lo"] + b["hi"]) / 2 for b in bins]
            widths = [max(0.02, b["hi"] - b["lo"]) for b in bins]
            ax.bar(centers, [b["acc"] for b in bins], width=widths, color=COLORS[0], alpha=0.8,
                   edgecolor="white", label="accuracy")
            ax.plot([b["conf"] for b in bins], [b["acc"] for b in bins], "o", color=COLORS[1], ms=3,
                    label="(confidence, accuracy)")
        ece = p.get("ece")
        ax.set_title(p["title"] + (f"\nECE = {100 * ece:.1f}%" if ece is not None else ""), fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (P of chosen answer)", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    return _save(fig, out)
