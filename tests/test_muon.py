"""The Muon + AdamW optimizer: orthogonalised updates, which parameters it takes, exact resume."""

import torch

from tinygpt4.checkpoint import build_model, load_resume_state, save_resume_state
from tinygpt4.train.loop import TrainConfig, make_optimizer
from tinygpt4.train.muon import MuonAdamW, orthogonalize


def test_orthogonalize_flattens_the_spectrum_of_wide_and_tall_matrices():
    torch.manual_seed(0)
    # Singular values spread over two orders of magnitude come out within the quintic iteration's band.
    u, _ = torch.linalg.qr(torch.randn(3, 48, 48))
    v, _ = torch.linalg.qr(torch.randn(3, 20, 20))
    s = torch.logspace(-1, 1, 20)
    tall = u[:, :, :20] @ torch.diag(s) @ v.mT  # [3, 48, 20]
    for g in (tall, tall.mT):
        o = orthogonalize(g)
        assert o.shape == g.shape
        sv = torch.linalg.svdvals(o)
        assert sv.min() > 0.5 and sv.max() < 1.25
        # and it points where U·Vᵀ of the exact SVD does
        uu, _, vh = torch.linalg.svd(g, full_matrices=False)
        assert torch.cosine_similarity(o.flatten(1), (uu @ vh).flatten(1)).min() > 0.95


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest(tiny_config):
    model = build_model(tiny_config, device=torch.device("cpu"), seed=0)
    opt = make_optimizer(model, TrainConfig(optimizer="muon"), torch.device("cpu"))
    assert isinstance(opt, MuonAdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = [names[id(p)] for g in opt.param_groups if g["muon"] for p in g["params"]]
    other = [names[id(p)] for g in opt.param_groups if not g["muon"] for p in g["params"]]
    assert muon and all(".layers." in f".{n}" and n.endswith("proj.weight") for n in muon)
    assert any("embed" in n for n in other) and any("lm_head" in n for n in other)
    assert len(muon) + len(other) == len(names)


def _step(model, opt, x):
    loss = model(x[:, :-1], targets=x[:, 1:])
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def test_muon_lowers_the_loss_and_resumes_exactly(tiny_config, tmp_path):
    torch.manual_seed(0)
    x = torch.randint(0, tiny_config.vocab_size, (4, 33))
    cfg = TrainConfig(optimizer="muon", lr=3e-3)
    model = build_model(tiny_config, device=torch.device("cpu"), seed=0)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    losses = [_step(model, opt, x) for _ in range(12)]
    assert losses[-1] < 0.8 * losses[0]

    save_resume_state(tmp_path, model, opt, {"step": 12})
    after = [_step(model, opt, x) for _ in range(3)]

    model2 = build_model(tiny_config, device=torch.device("cpu"), seed=1)
    opt2 = make_optimizer(model2, cfg, torch.device("cpu"))
    assert load_resume_state(tmp_path, model2, opt2)["step"] == 12
    assert [_step(model2, opt2, x) for _ in range(3)] == after
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_loaded_step_counters_sit_on_their_parameters_device():
    """Regression: a resumed GPU run failed in the fused AdamW kernel ("state_steps is on cpu") because torch
    loads "step" onto the CPU unless the param group names a fused kernel. The meta device stands in for a GPU."""
    src = [torch.nn.Parameter(torch.randn(4, 4)), torch.nn.Parameter(torch.randn(4))]
    opt = MuonAdamW([{"params": src, "muon": False}], lr=1e-3)
    for p in src:
        p.grad = torch.ones_like(p)
    opt.step()
    dst = [torch.nn.Parameter(torch.empty(4, 4, device="meta")), torch.nn.Parameter(torch.empty(4, device="meta"))]
    opt2 = MuonAdamW([{"params": dst, "muon": False}], lr=1e-3, fused=True)
    opt2.load_state_dict(opt.state_dict())
    for p in dst:
        assert {name: t.device.type for name, t in opt2.state[p].items()} == \
            {"step": "meta", "exp_avg": "meta", "exp_avg_sq": "meta"}
        assert opt2.state[p]["step"].dtype == torch.float32


def test_a_vlm_gives_muon_the_tower_and_decoder_blocks_and_adamw_the_projector(tiny_tokenizer):
    from conftest import tiny_model_config

    model = build_model(tiny_model_config(tiny_tokenizer.vocab_size, vision=True), device=torch.device("cpu"), seed=0)
    opt = make_optimizer(model, TrainConfig(optimizer="muon", lr_mult={"projector.": 4.0}), torch.device("cpu"))
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for g in opt.param_groups if g["muon"] for p in g["params"]}
    assert any(n.startswith("vision.") for n in muon) and any(n.startswith("lm.") for n in muon)
    assert not any(n.startswith("projector.") for n in muon)
    assert all(g["lr_mult"] == 4.0 for g in opt.param_groups
               if any(names[id(p)].startswith("projector.") for p in g["params"]))
