import torch

from tinygpt4.checkpoint import load_model, save_model
from tinygpt4.config import model_preset
from tinygpt4.model.gpt import GPT


def test_shapes_and_gqa(tiny_config):
    m = GPT.build(tiny_config, seed=0)
    x = torch.randint(0, tiny_config.vocab_size, (2, 10))
    assert m(x).shape == (2, 10, tiny_config.vocab_size)
    attn = m.model.layers[0].self_attn
    assert attn.k_proj.weight.shape[0] == tiny_config.n_kv_head * tiny_config.head_dim
    assert attn.q_proj.weight.shape[0] == tiny_config.n_head * tiny_config.head_dim
    assert tiny_config.n_kv_head < tiny_config.n_head
    assert all(lin.bias is None for lin in m.modules() if isinstance(lin, torch.nn.Linear))


def test_hf_style_parameter_names(tiny_config):
    names = set(GPT.build(tiny_config).state_dict())
    for n in ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
              "model.layers.0.self_attn.q_norm.weight", "model.layers.0.mlp.gate_proj.weight",
              "model.layers.0.input_layernorm.weight", "model.norm.weight", "lm_head.weight"]:
        assert n in names


def test_causal(tiny_config):
    m = GPT.build(tiny_config, seed=0)
    x = torch.randint(0, tiny_config.vocab_size, (1, 12))
    y = x.clone()
    y[0, 8:] = (y[0, 8:] + 1) % tiny_config.vocab_size
    assert torch.allclose(m(x)[0, :8], m(y)[0, :8], atol=1e-5)


def test_loss_falls_when_overfitting_a_batch(tiny_config):
    torch.manual_seed(0)
    m = GPT.build(tiny_config, seed=0)
    x = torch.randint(0, tiny_config.vocab_size, (4, 32))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = m(x[:, :-1], x[:, 1:])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.3


def test_presets_and_flops():
    tiny = model_preset("tiny", 8192)
    m = GPT.build(tiny, seed=0)
    assert 2e6 < m.num_params() < 1e7
    assert m.flops_per_token() > 6 * m.num_params(exclude_embedding=True)
    for name, depth in [("d12", 12), ("d20", 20), ("d26", 26)]:
        c = model_preset(name, 32768)
        assert c.n_layer == depth and c.n_embd == 64 * depth and c.n_embd % c.head_dim == 0


def test_save_load_round_trip(tiny_config, tiny_tokenizer, tmp_path):
    m = GPT.build(tiny_config, seed=3)
    save_model(tmp_path, m, tiny_tokenizer)
    m2, tok2 = load_model(tmp_path)
    x = torch.randint(0, tiny_config.vocab_size, (1, 9))
    assert torch.equal(m(x), m2(x))
    assert tok2.encode("hello") == tiny_tokenizer.encode("hello")


def test_saved_files_get_ordinary_permissions(tiny_config, tiny_tokenizer, tmp_path):
    """Regression: files written through a temp file were left 0600 (mkstemp's mode), so a checkpoint or a
    report shared with another user or a web server could not be read."""
    import os

    from tinygpt4.checkpoint import save_resume_state

    mask = os.umask(0)
    os.umask(mask)
    m = GPT.build(tiny_config, seed=0)
    save_model(tmp_path, m, tiny_tokenizer)
    save_resume_state(tmp_path, m, torch.optim.AdamW(m.parameters()), {"step": 1})
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert (tmp_path / "resume").stat().st_mode & 0o777 == 0o777 & ~mask
