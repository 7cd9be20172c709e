"""The vision-language model: splicing, engine equivalence, checkpoints, attaching a tower to a text model."""

import pytest
import torch
from conftest import tiny_model_config
from PIL import Image

from tinygpt4.chat import render_chat
from tinygpt4.checkpoint import load_model, save_model
from tinygpt4.config import VisionConfig, vision_preset
from tinygpt4.decoding import mask_specials
from tinygpt4.engine import Engine
from tinygpt4.model.gpt import GPT
from tinygpt4.model.vision import Projector, VisionAttention, pixel_shuffle
from tinygpt4.model.vlm import VLM


@pytest.fixture
def vlm(tiny_tokenizer):
    return VLM.build(tiny_model_config(tiny_tokenizer.vocab_size, vision=True), seed=3).eval()


def _img(seed: int, size: int = 32) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    px = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8)
    return Image.fromarray(px.numpy())


def _prompt(tok, n_images: int, text: str, k: int):
    parts = [{"type": "image_url", "image_url": {"url": f"{i}"}} for i in range(n_images)]
    msgs = [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]
    return render_chat(msgs, tok, image_tokens=k, add_generation_prompt=True, load_images=False).ids


def test_tower_attention_as_matmuls_matches_sdpa(vlm, monkeypatch):
    """The CPU path of the tower's attention (plain matmuls, float32 softmax) computes what SDPA does, in
    float32 and under bf16 autocast, forward and backward."""
    px = torch.randn(5, 3, vlm.config.vision.image_size, vlm.config.vision.image_size,
                     generator=torch.Generator().manual_seed(0))

    def run(explicit: bool, bf16: bool):
        monkeypatch.setattr(VisionAttention, "explicit_on_cpu", explicit)
        vlm.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = vlm.encode_images(px).float()
        out.square().mean().backward()
        return out.detach(), vlm.vision.encoder.layers[0].self_attn.q_proj.weight.grad.clone()

    for bf16, tol in ((False, 1e-5), (True, 3e-2)):
        (a, ga), (b, gb) = run(False, bf16), run(True, bf16)
        assert torch.allclose(a, b, atol=tol, rtol=tol), (bf16, (a - b).abs().max())
        assert torch.allclose(ga, gb, atol=tol * ga.abs().max(), rtol=tol), (bf16, (ga - gb).abs().max())


def test_presets_give_the_documented_token_counts():
    assert vision_preset("tiny").tokens_per_image == 16
    assert vision_preset("224").tokens_per_image == 49
    assert vision_preset("384").tokens_per_image == 64
    with pytest.raises(ValueError):
        vision_preset("999")


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_both_stems_train(tiny_tokenizer, stem):
    cfg = tiny_model_config(tiny_tokenizer.vocab_size, vision=True)
    cfg.vision.stem = stem
    m = VLM.build(cfg, seed=0)
    k = m.tokens_per_image
    ids = torch.tensor([_prompt(tiny_tokenizer, 2, "Which has more?", k) + [9, tiny_tokenizer.eot_id]])
    m(ids[:, :-1], ids[:, 1:], images=[_img(0), _img(1)]).backward()
    grad = m.vision.embeddings.patch_embedding.parameters().__next__().grad
    assert grad is not None and grad.abs().sum() > 0
    per_token = m.projector.fc1.weight.numel() + m.projector.fc2.weight.numel()
    assert m.flops_per_image() > 6 * (k * per_token + m.projector.global_proj.weight.numel())


def test_global_token_gives_every_token_the_whole_layout():
    vc = VisionConfig(image_size=32, patch_size=8, width=8, depth=1, n_head=2, shuffle=2)
    feats = torch.randn(1, 16, 8)
    moved = feats.clone()
    moved[0, 0] += 1.0  # one patch in the top-left group
    for global_token, changed in ((False, [True, False, False, False]), (True, [True] * 4)):
        vc.global_token = global_token
        torch.manual_seed(0)
        proj = Projector(vc, 12)
        with torch.no_grad():
            diff = (proj(moved) - proj(feats)).abs().amax(-1)[0]
        assert (diff > 1e-6).tolist() == changed


def test_pixel_shuffle_groups_neighbouring_patches():
    x = torch.arange(16).float().view(1, 16, 1)  # a 4x4 grid, row-major
    y = pixel_shuffle(x, 2)
    assert y.shape == (1, 4, 4)
    assert y[0, 0].tolist() == [0, 1, 4, 5] and y[0, 3].tolist() == [10, 11, 14, 15]


def test_images_are_spliced_over_placeholders_in_row_major_order(vlm, tiny_tokenizer):
    tok = tiny_tokenizer
    k = vlm.tokens_per_image
    rows = [_prompt(tok, 2, "Veloria", k), _prompt(tok, 1, "Tamsk", k)]
    T = max(map(len, rows))
    idx = torch.full((2, T), tok.pad_id)
    for i, r in enumerate(rows):
        idx[i, :len(r)] = torch.tensor(r)
    imgs = [_img(0), _img(1), _img(2)]
    with torch.no_grad():
        emb = vlm.embed(idx, imgs)
        feats = vlm.encode_images(imgs)
        plain = vlm.lm.model.embed_tokens(idx)
    slots = idx == tok.image_id
    assert torch.equal(emb[~slots], plain[~slots])
    assert torch.allclose(emb[slots].view(3, k, -1), feats)
    first = slots[0].nonzero()[0, 0]
    assert torch.allclose(emb[0, first:first + k], feats[0])
    with pytest.raises(ValueError, match="placeholder"):
        vlm.embed(idx, imgs[:2])


def test_images_change_the_answer_distribution(vlm, tiny_tokenizer):
    ids = torch.tensor([_prompt(tiny_tokenizer, 1, "What colour?", vlm.tokens_per_image)])
    with torch.no_grad():
        a = vlm(ids, images=[_img(0)])[0, -1]
        b = vlm(ids, images=[_img(1)])[0, -1]
    assert not torch.allclose(a, b)


def _naive(model, prompt, images, n, eot):
    seq, out = list(prompt), []
    for _ in range(n):
        with torch.no_grad():
            t = int(mask_specials(model(torch.tensor([seq]), images=images or None)[0, -1]).argmax())
        if t == eot:
            break
        out.append(t)
        seq.append(t)
    return out


def test_batched_multimodal_engine_equals_unbatched_decoding(vlm, tiny_tokenizer):
    tok = tiny_tokenizer
    k = vlm.tokens_per_image
    with torch.no_grad():  # larger weights so greedy decoding does not collapse onto one token
        for p in vlm.parameters():
            if p.dim() >= 2:
                p.mul_(8)
    prompts = [_prompt(tok, 2, "Which has more?", k), _prompt(tok, 0, "Hello world", k),
               _prompt(tok, 1, "서울", k), _prompt(tok, 3, "", k)]
    images = [[_img(1), _img(2)], [], [_img(3)], [_img(4), _img(5), _img(6)]]
    eng = Engine(vlm, tok)
    batched = eng.generate(prompts, max_new_tokens=12, images=images)
    assert len({tuple(c.token_ids) for c in batched}) > 1
    for p, ims, c in zip(prompts, images, batched):
        alone = eng.generate([p], max_new_tokens=12, images=[ims])[0]
        assert alone.token_ids == c.token_ids
        assert c.token_ids == _naive(vlm, p, ims, 12, tok.eot_id)


def test_checkpoint_round_trip_keeps_vision(vlm, tiny_tokenizer, tmp_path):
    save_model(tmp_path, vlm, tiny_tokenizer)
    loaded, tok = load_model(tmp_path)
    assert isinstance(loaded, VLM) and loaded.config.vision == vlm.config.vision
    ids = torch.tensor([_prompt(tok, 1, "hi", vlm.tokens_per_image)])
    with torch.no_grad():
        assert torch.equal(loaded(ids, images=[_img(0)]), vlm(ids, images=[_img(0)]))


def test_from_text_model_keeps_text_behaviour(tiny_tokenizer):
    cfg = tiny_model_config(tiny_tokenizer.vocab_size)
    gpt = GPT.build(cfg, seed=5).eval()
    idx = torch.tensor([[tiny_tokenizer.bos_id, *tiny_tokenizer.encode("The capital of Veloria")]])
    with torch.no_grad():
        before = gpt(idx)
    vc = tiny_model_config(cfg.vocab_size, vision=True).vision
    vlm = VLM.from_text_model(gpt, vc).eval()
    assert vlm.config.vision == vc and gpt.config.vision is None
    assert vlm.num_params() == gpt.num_params() + vlm.vision_params()
    assert vlm.flops_per_token(64, 0.25) > vlm.flops_per_token(64) == gpt.flops_per_token(64)
    with torch.no_grad():
        assert torch.equal(vlm(idx), before)


def test_loss_on_trained_positions_only_equals_the_full_head(vlm, tiny_tokenizer):
    k = vlm.tokens_per_image
    ids = torch.tensor([_prompt(tiny_tokenizer, 1, "What colour?", k) + [9, 10, 11, tiny_tokenizer.eot_id]])
    idx, targets = ids[:, :-1], ids[:, 1:].clone()
    targets[:, : targets.shape[1] - 4] = -1
    with torch.no_grad():
        loss = vlm(idx, targets, images=[_img(0)])
        logits = vlm(idx, images=[_img(0)])
    full = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=-1)
    assert torch.allclose(loss, full, atol=1e-5)
    with torch.no_grad():
        assert float(vlm(idx, torch.full_like(targets, -1), images=[_img(0)])) == 0.0


def test_compiled_decoder_gives_the_eager_loss_and_gradients(vlm, tiny_tokenizer):
    k = vlm.tokens_per_image
    ids = torch.tensor([_prompt(tiny_tokenizer, 2, "Which has more?", k) + [9, 10, tiny_tokenizer.eot_id]])
    idx, targets = ids[:, :-1], ids[:, 1:].clone()
    targets[:, : targets.shape[1] - 3] = -1
    images = [_img(1), _img(2)]

    def loss_and_grad():
        vlm.zero_grad(set_to_none=True)
        loss = vlm(idx, targets, images=images)
        loss.backward()
        return float(loss.detach()), vlm.projector.fc1.weight.grad.clone()

    vlm.train()
    eager = loss_and_grad()
    vlm.compile_decoder(backend="aot_eager")  # the traced graph and its autograd, without a minute of C++ builds
    compiled = loss_and_grad()
    vlm.compile_decoder(False)
    assert vlm._compiled_hidden_states is None  # the eager decoder is back
    assert compiled[0] == pytest.approx(eager[0], rel=1e-4)
    assert torch.allclose(compiled[1], eager[1], rtol=1e-3, atol=1e-6)  # gradients still reach the tower
