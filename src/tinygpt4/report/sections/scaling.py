"""Predictable scaling (scaling/fit.json and outcome.json): the ladder's fitted laws, their predictions for
the final model against what it reached, and the scaling figure."""

from __future__ import annotations

import shutil

from tinygpt4.report.blocks import Doc, Figure, flops, num, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import read_json


def _figure(doc: Doc) -> None:
    d = doc.run.root / "scaling"
    try:
        # imported here: it pulls in scipy, and without it the copy in scaling/ serves
        from tinygpt4.scaling.figures import plot_scaling

        plot_scaling(d, doc.out / "scaling.png")
    except Exception:  # the scaling figure is optional; fall back to the one in scaling/
        if not (d / "scaling.png").is_file():
            return
        shutil.copyfile(d / "scaling.png", doc.out / "scaling.png")
    doc.blocks.append(Figure("scaling.png", "Ladder runs, the fitted law, the prediction with its "
                             "interval, and the actual final loss."))


def _predictions(fit: dict, outcome: dict) -> list[list[str]]:
    interval = fit.get("predicted_final_loss_interval") or [None, None]
    rows = [["final validation loss", num(fit.get("predicted_final_loss")),
             f"[{num(interval[0])}, {num(interval[1])}]", num(outcome.get("actual_final_loss")),
             pct(outcome.get("relative_error")) if "relative_error" in outcome else "–"]]
    cap = fit.get("capability")
    if isinstance(cap, dict):
        ci = cap.get("interval") or [None, None]
        rows.append([str(cap.get("name", "capability")), num(cap.get("predicted")),
                     f"[{num(ci[0])}, {num(ci[1])}]", num(outcome.get("actual_metric")),
                     pct(outcome["metric_relative_error"]) if "metric_relative_error" in outcome else "–"])
    return rows


@section("scaling", order=120)
def scaling(doc: Doc) -> None:
    d = doc.run.root / "scaling"
    fit = read_json(d / "fit.json")
    if not isinstance(fit, dict):
        return
    outcome = read_json(d / "outcome.json") or {}
    doc.h(2, "Predictable scaling")
    doc.p("Before the final model trained, a ladder of smaller models trained with the same recipe; a "
          "power law L(C) = a·C^b + c fitted to their final losses predicted the final model's loss, and a "
          "power law without offset, −log pass rate = α·C^−k, fitted to their mean negative log pass rate "
          "on world exam questions predicted the final model's.")
    _figure(doc)
    doc.table(["quantity", "predicted", "interval", "actual", "relative error"], _predictions(fit, outcome))
    pts = fit.get("points") or []
    if pts:
        doc.table(["ladder run", "training FLOPs", "final val loss"],
                  [[str(i + 1), flops(p.get("flops")), num(p.get("final_val_loss"))]
                   for i, p in enumerate(pts)])
