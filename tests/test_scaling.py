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
    res = bootstrap_power_law(compute, loss, target_compute=1e17, n_boot=40, seed=0)
    lo, hi = res["intervals"]["prediction"]
    assert lo < truth(1e17) < hi
    assert lo <= res["prediction"] <= hi
    assert hi - lo < 0.2 * truth(1e17)
    b_lo, b_hi = res["intervals"]["b"]
    assert b_lo < -0.12 < b_hi
    again = bootstrap_power_law(compute, loss, target_compute=1e17, n_boot=40, seed=0)
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


# ---- the ladder ------------------------------------------------------------------------------------------

def _target(vocab_size=6738, steps=800, **kw):
    from tinygpt4.scaling.ladder import resolve_target
    from tinygpt4.train.pretrain import PretrainConfig

    return resolve_target(PretrainConfig(data=[], tokenizer="", out="unused", max_steps=steps, **kw), vocab_size)


def test_ladder_plan_obeys_the_rules():
    from tinygpt4.scaling.ladder import plan_ladder

    target = _target(optimizer="adamw")
    rungs = plan_ladder(target, n_rungs=6)
    assert len(rungs) >= 5
    flops = [r.flops for r in rungs]
    assert flops == sorted(flops)
    assert max(flops) <= target.flops / 100
    assert max(flops) / min(flops) >= 100
    for r in rungs:
        # tokens per parameter as Chinchilla counts them: every parameter, the embeddings included
        assert r.tokens / r.params == pytest.approx(target.tokens_per_param("total"), rel=0.1)
        assert r.params > r.non_embedding_params
        assert r.model["n_layer"] == target.model["n_layer"]
        assert (r.val_batches, r.val_batch_size) == (target.val_batches, target.batch_size)
        # narrower: a larger step; fewer sequences per step: a smaller one (square-root rules for both)
        width = r.model["n_embd"]
        want = target.lr * (target.model["n_embd"] / width) ** 0.5 * (r.batch_size / target.batch_size) ** 0.5
        assert r.lr == pytest.approx(want)
    assert any(r.batch_size < target.batch_size for r in rungs)
    gpu = plan_ladder(_target(vocab_size=65536, steps=5000, preset="d12"), n_rungs=5)
    assert max(r.flops for r in gpu) <= _target(vocab_size=65536, steps=5000, preset="d12").flops / 1000


def test_ladder_follows_the_targets_optimizer():
    from tinygpt4.scaling.ladder import plan_ladder

    assert _target().optimizer == "muon"  # the tiny preset's default
    assert _target(preset="d12").optimizer == "adamw"
    target = _target(optimizer="muon")
    for r in plan_ladder(target, n_rungs=6):
        # Muon rungs take the full 1/width step of muP
        want = target.lr * (target.model["n_embd"] / r.model["n_embd"]) * (r.batch_size / target.batch_size) ** 0.5
        assert r.lr == pytest.approx(want)


def test_shape_for_width_reproduces_the_target():
    from tinygpt4.config import model_preset
    from tinygpt4.scaling.ladder import shape_for_width

    for preset in ("tiny", "d12"):
        mc = model_preset(preset, 8192)
        assert shape_for_width(mc, mc.n_embd) == mc


def _write_fit_inputs(d: Path, c_target=1e15):
    import json

    compute, loss, truth = _synthetic(noise=0.003, seed=3)
    rungs = [{"name": f"r{i}", "flops": float(c), "final_val_loss": float(v), "non_embedding_params": 1000 * (i + 1),
              "tokens": 100 * (i + 1)} for i, (c, v) in enumerate(zip(compute, loss))]
    target = {"preset": "tiny", "flops": c_target, "tokens": 10**6, "non_embedding_params": 10**6}
    d.mkdir(parents=True, exist_ok=True)
    (d / "ladder.json").write_text(json.dumps({"target": target, "rungs": rungs, "wall_s": 1.0}))
    return truth(c_target)


def test_prediction_is_written_once_and_outcome_beside_it(tmp_path):
    import json

    from tinygpt4.scaling.ladder import predict, record_outcome

    d = tmp_path / "scaling"
    truth = _write_fit_inputs(d)
    fit = predict(d, n_boot=30)
    assert fit["predicted_final_loss"] == pytest.approx(truth, rel=0.03)
    lo, hi = fit["predicted_final_loss_interval"]
    assert lo <= fit["predicted_final_loss"] <= hi
    assert (d / "scaling.png").stat().st_size > 0
    before = (d / "fit.json").read_bytes()
    with pytest.raises(UserError, match="never rewritten"):
        predict(d, n_boot=30)
    assert (d / "fit.json").read_bytes() == before

    out = record_outcome(d, truth * 1.01)
    assert out["actual_final_loss"] == pytest.approx(truth * 1.01)
    assert out["relative_error"] == pytest.approx((fit["predicted_final_loss"] - truth * 1.01) / (truth * 1.01))
    assert json.loads((d / "outcome.json").read_text()) == out
    assert (d / "fit.json").read_bytes() == before


def _tiny_target_config(tmp_path, tiny_tokenizer, **kw):
    """A 2-layer, 128-wide target of 100 steps on the test corpus: ladders under it train in seconds."""
    import json

    from conftest import CORPUS

    from tinygpt4.config import ModelConfig
    from tinygpt4.train.pretrain import PretrainConfig

    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in CORPUS))
    tiny_tokenizer.save(tmp_path / "tok")
    target = ModelConfig(vocab_size=tiny_tokenizer.vocab_size, n_layer=2, n_embd=128, n_head=4, n_kv_head=2,
                         head_dim=32, mlp_hidden=256, seq_len=64)
    return PretrainConfig(data=[str(data)], tokenizer=str(tmp_path / "tok"), out=str(tmp_path / "run" / "base"),
                          model=target, max_steps=100, batch_size=8, device="cpu", quiet=True, **kw)


def test_tiny_ladder_smoke(tmp_path, tiny_tokenizer):
    import json

    from tinygpt4.scaling.ladder import record_outcome, run_ladder

    cfg = _tiny_target_config(tmp_path, tiny_tokenizer)
    scaling = tmp_path / "run" / "scaling"
    # two worker processes: the CPU default of training rungs in parallel
    fit = run_ladder(cfg, scaling, n_rungs=5, n_boot=20, workers=2, log=lambda *_: None)
    ladder = json.loads((scaling / "ladder.json").read_text())
    assert len(ladder["rungs"]) == 5 and all(r["final_val_loss"] > 0 for r in ladder["rungs"])
    assert fit["compute_span"] >= 100 and fit["max_rung_fraction"] <= 0.01
    assert fit["predicted_final_loss"] > 0
    with pytest.raises(UserError):
        run_ladder(cfg, scaling, n_rungs=5, n_boot=20, log=lambda *_: None)
    assert record_outcome(scaling, 3.0)["actual_final_loss"] == 3.0


def test_capability_metric_is_mean_negative_log_pass_rate():
    from tinygpt4.data.readers import McItem
    from tinygpt4.evals.capability import capability_metric

    class FakeLM:
        def loglikelihood(self, requests):
            assert all(ctx.startswith("Q: ") and ctx.endswith("\nA:") for ctx, _ in requests)
            return [{" right": -1.0, " wrong": -3.0}[cont] for _, cont in requests]

    items = [McItem("a?", ["right", "wrong", "wrong", "wrong"], 0),
             McItem("b?", ["wrong", "wrong", "right", "wrong"], 1)]
    m = capability_metric(FakeLM(), items)
    assert m["value"] == pytest.approx(2.0)  # -log p(answer): 1 for the first, 3 for the second
    assert m["accuracy"] == 0.5
    z = np.log(np.exp(-1.0) + 3 * np.exp(-3.0))
    assert m["choice_value"] == pytest.approx(((1.0 + z) + (3.0 + z)) / 2)


def test_capability_prediction_follows_a_power_law_in_compute():
    from tinygpt4.scaling.ladder import predict_capability

    compute = np.geomspace(1e9, 1e11, 6)
    metric = 8.0 * (compute / 1e9) ** -0.1
    res = predict_capability(compute, metric, 1e13)
    assert res["k"] == pytest.approx(0.1, rel=1e-6) and res["alpha"] == pytest.approx(8.0, rel=1e-6)
    assert res["predicted"] == pytest.approx(8.0 * 1e4 ** -0.1, rel=1e-6)
    lo, hi = res["interval"]
    assert lo <= res["predicted"] <= hi
    noisy = metric * np.exp(np.random.default_rng(0).normal(0, 0.05, metric.size))
    lo, hi = predict_capability(compute, noisy, 1e13)["interval"]
    assert hi - lo > 0.01  # resampling noisy rungs gives an interval, not a point


def test_ladder_with_several_seeds_averages_each_rung(tmp_path, tiny_tokenizer):
    import json

    from tinygpt4.scaling.ladder import run_ladder

    cfg = _tiny_target_config(tmp_path, tiny_tokenizer, seed=3)
    one = run_ladder(cfg, tmp_path / "one", n_rungs=3, n_boot=10, workers=1, log=lambda *_: None)
    two = run_ladder(cfg, tmp_path / "two", n_rungs=3, n_boot=10, workers=1, seeds=2, log=lambda *_: None)
    rungs = json.loads((tmp_path / "two" / "ladder.json").read_text())["rungs"]
    for r, p1 in zip(rungs, one["points"]):
        losses = r["seed_losses"]
        assert sorted(losses) == ["3", "4"]  # the target's seed, then the next
        assert losses["3"] == p1["final_val_loss"]  # the first seed is the one-seed ladder's run
        assert r["final_val_loss"] == pytest.approx((losses["3"] + losses["4"]) / 2)
        assert losses["3"] != losses["4"]
    assert [p["final_val_loss"] for p in two["points"]] == [r["final_val_loss"] for r in rungs]
    with pytest.raises(UserError, match="seeds"):
        run_ladder(cfg, tmp_path / "bad", n_rungs=3, seeds=0, log=lambda *_: None)


def test_ladder_rungs_train_with_the_targets_optimizer(tmp_path, tiny_tokenizer):
    import json

    from tinygpt4.scaling.ladder import run_ladder

    cfg = _tiny_target_config(tmp_path, tiny_tokenizer, optimizer="muon")
    run_ladder(cfg, tmp_path / "muon", n_rungs=3, n_boot=10, workers=1, log=lambda *_: None)
    ladder = json.loads((tmp_path / "muon" / "ladder.json").read_text())
    assert ladder["target"]["optimizer"] == "muon"
    for r in ladder["rungs"]:
        state = json.loads((tmp_path / "muon" / "runs" / r["name"] / "resume" / "train_state.json").read_text())
        assert state["train_config"]["optimizer"] == "muon"
