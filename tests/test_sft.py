"""SFT: assistant-only loss, packing without cross-talk, exact data position, the end-to-end command."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_model_config
from PIL import Image
from safetensors.torch import load_file

from tinygpt4.checkpoint import load_model, read_config, save_model
from tinygpt4.engine import Engine
from tinygpt4.errors import UserError
from tinygpt4.model.gpt import GPT
from tinygpt4.model.vlm import VLM
from tinygpt4.train.sft import (
    ChatBatches,
    SFTConfig,
    load_chat_examples,
    load_text_examples,
    pack_rows,
    run_sft,
)

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}


@pytest.fixture
def world(tmp_path):
    """A miniature world folder: images/, chat/sft.jsonl (paths relative to the root), captions.jsonl."""
    root = tmp_path / "world"
    (root / "images").mkdir(parents=True)
    (root / "chat").mkdir()
    convos, captions = [], []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        rel = f"images/{i}.png"
        Image.new("RGB", (32, 32), rgb).save(root / rel)
        img = {"type": "image_url", "image_url": {"url": rel}}
        convos.append({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look:"}, img, {"type": "text", "text": "Colour?"}]},
            {"role": "assistant", "content": name},
            {"role": "user", "content": "And again?"},
            {"role": "assistant", "content": f"It is {name}."},
        ]})
        captions.append({"image": rel, "text": f"A {name} square."})
    convos.append({"messages": [{"role": "user", "content": "Hello world"},
                                {"role": "assistant", "content": "Hello!"}]})
    (root / "chat" / "sft.jsonl").write_text("".join(json.dumps(c) + "\n" for c in convos))
    (root / "captions.jsonl").write_text("".join(json.dumps(c) + "\n" for c in captions))
    (root / "text.jsonl").write_text(json.dumps({"text": "The capital of Veloria is Tamsk."}) + "\n")
    return root


def _vlm(tok, seed=0):
    return VLM.build(tiny_model_config(tok.vocab_size, vision=True, seq_len=96), seed=seed)


def _batches(world, tok, model, batch_size=2, seed=0):
    ex, _ = load_chat_examples([str(world / "chat" / "sft.jsonl")], tok, model.tokens_per_image, 97)
    return ex, ChatBatches(ex, batch_size, 96, image_size=model.config.vision.image_size, pad_id=tok.pad_id,
                           seed=seed)


def test_targets_are_exactly_the_assistant_tokens(world, tiny_tokenizer):
    tok = tiny_tokenizer
    model = _vlm(tok)
    ex, batches = _batches(world, tok, model)
    b = batches.collate([[0, 3]])
    n0 = len(ex[0].ids) - 1
    for e, start in ((ex[0], 0), (ex[3], n0)):
        n = len(e.ids) - 1
        want = [t if m else -1 for t, m in zip(e.ids[1:], e.mask[1:])]
        assert b["targets"][0, start:start + n].tolist() == want
        assert b["positions"][0, start:start + n].tolist() == list(range(n))
    assert (b["targets"][0, n0 + len(ex[3].ids) - 1:] == -1).all()  # padding is never trained
    trained = [tok.decode([t]) for t in b["targets"][0, :n0].tolist() if t >= 0]
    assert "".join(trained).strip().startswith("red")
    assert b["images"].shape == (1, 3, 32, 32)


def test_packed_conversations_do_not_see_each_other(world, tiny_tokenizer):
    tok = tiny_tokenizer
    model = _vlm(tok).eval()
    ex, batches = _batches(world, tok, model)
    packed = batches.collate([[3, 1]])
    alone = batches.collate([[1]])
    off = len(ex[3].ids) - 1
    n = len(ex[1].ids) - 1
    with torch.no_grad():
        lp = model(packed["idx"], images=packed["images"], positions=packed["positions"],
                   attn_mask=packed["attn_mask"])
        la = model(alone["idx"], images=alone["images"], positions=alone["positions"], attn_mask=alone["attn_mask"])
    assert torch.allclose(lp[0, off:off + n], la[0, :n], atol=1e-5)


def test_packing_fills_rows_and_keeps_every_example_once():
    # next-fit would close a row after each 150 and leave the second 100 alone: three rows
    assert pack_rows([150, 150, 100, 100], np.arange(4), 256) == [[0, 3], [1, 2]]
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 257, size=400).tolist()
    order = rng.permutation(400)
    rows = pack_rows(lengths, order, 256)
    assert sorted(i for row in rows for i in row) == list(range(400))
    assert all(sum(lengths[i] for i in row) <= 256 for row in rows)
    rank = {int(i): k for k, i in enumerate(order)}
    assert all(row == sorted(row, key=rank.get) for row in rows)  # a row keeps the given order
    # no two rows could be merged, and nine positions in ten are used (next-fit: under eight)
    fills = sorted(sum(lengths[i] for i in row) for row in rows)
    assert fills[0] + fills[1] > 256
    assert sum(lengths) / (256 * len(rows)) > 0.9


def test_loss_is_the_mean_over_assistant_tokens_only(world, tiny_tokenizer):
    tok = tiny_tokenizer
    model = _vlm(tok)
    ex, batches = _batches(world, tok, model, batch_size=3)
    b = batches.next()
    loss = model(**b)
    with torch.no_grad():
        logits = model(b["idx"], images=b["images"], positions=b["positions"], attn_mask=b["attn_mask"])
    nll = -torch.log_softmax(logits.float(), -1)
    trained = b["targets"] >= 0
    want = nll[trained].gather(-1, b["targets"][trained][:, None]).mean()
    assert torch.allclose(loss, want, atol=1e-5)
    n_assistant = sum(sum(e.mask[1:]) for e in ex)
    assert int(trained.sum()) <= n_assistant and int(trained.sum()) > 0
    loss.backward()
    assert model.vision.embeddings.patch_embedding.weight.grad.abs().sum() > 0


def test_user_tokens_get_no_gradient_text_only(world, tiny_tokenizer):
    tok = tiny_tokenizer
    model = GPT.build(tiny_model_config(tok.vocab_size, seq_len=96), seed=0)
    ex, _ = load_chat_examples([str(world / "chat" / "sft.jsonl")], tok, 4, 97)
    b = ChatBatches(ex, 3, 96, image_size=None, pad_id=tok.pad_id, with_images=False).next()
    assert "images" not in b
    grads = {}

    def keep_grad(module, args, out):
        out.register_hook(lambda g: grads.setdefault("g", g))

    model.lm_head.register_forward_hook(keep_grad)
    model(**b).backward()
    g = grads["g"].abs().sum(-1)
    assert (g[b["targets"] == -1] == 0).all()
    assert (g[b["targets"] >= 0] > 0).all()


def test_batch_position_resumes_exactly(world, tiny_tokenizer):
    tok = tiny_tokenizer
    model = _vlm(tok)
    _, a = _batches(world, tok, model, seed=4)
    for _ in range(3):
        a.next()
    state = a.state_dict()
    _, b = _batches(world, tok, model, seed=4)
    b.load_state_dict(json.loads(json.dumps(state)))
    x, y = a.next(), b.next()
    assert all(torch.equal(x[k], y[k]) for k in ("idx", "targets", "positions", "attn_mask", "images"))


def test_text_examples_train_every_token(world, tiny_tokenizer):
    ex = load_text_examples([str(world / "text.jsonl")], tiny_tokenizer, 97, 10)
    assert ex[0].ids[0] == tiny_tokenizer.bos_id and ex[0].mask == [0] + [1] * (len(ex[0].ids) - 1)


def test_sft_attaches_vision_warms_up_and_trains(world, tiny_tokenizer, tmp_path):
    tok = tiny_tokenizer
    cfg = tiny_model_config(tok.vocab_size, seq_len=96)
    save_model(tmp_path / "base", GPT.build(cfg, seed=1), tok)
    vc = tiny_model_config(tok.vocab_size, vision=True).vision
    out = tmp_path / "sft"
    summary = run_sft(SFTConfig(
        base=str(tmp_path / "base"), data=[str(world / "chat" / "sft.jsonl")], out=str(out), max_steps=3,
        batch_size=2, vision=vc, captions=str(world / "captions.jsonl"), tower_steps=2, tower_batch_size=2,
        vision_warmup_steps=2,
        text_data=[str(world / "text.jsonl")], text_mix=0.2, val_fraction=0.3, quiet=True, eval_every=2,
    ))
    assert summary["steps"] == 3 and summary["vision_attached"] and summary["vision_warmup"]["steps"] == 2
    assert summary["tower_pretrain"]["steps"] == 2 and summary["tower_pretrain"]["captions"] == 3
    assert summary["final_val_loss"] is not None
    assert read_config(out)["model"]["vision"]["image_size"] == 32
    base_w = load_file(str(tmp_path / "base" / "model.safetensors"))
    warm_w = load_file(str(out / "warmup" / "model.safetensors"))
    assert all(torch.equal(warm_w[f"lm.{k}"], v) for k, v in base_w.items())  # decoder frozen in warm-up
    final_w = load_file(str(out / "model.safetensors"))
    assert not torch.equal(final_w["lm.lm_head.weight"], base_w["lm_head.weight"])
    model, tok2 = load_model(out)
    assert isinstance(model, VLM)
    parts = [{"type": "image_url", "image_url": {"url": "images/0.png"}}, {"type": "text", "text": "Colour?"}]
    from tinygpt4.chat import render_chat

    r = render_chat([{"role": "user", "content": parts}], tok2, image_tokens=model.tokens_per_image,
                    add_generation_prompt=True, image_root=world)
    c = Engine(model, tok2).generate([r.ids], max_new_tokens=4, images=[r.images])[0]
    assert c.finish_reason in ("stop", "length")
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert any("val_loss" in rec for rec in log)


def test_frozen_tower_keeps_its_weights_while_the_projector_trains(world, tiny_tokenizer, tmp_path):
    tok = tiny_tokenizer
    save_model(tmp_path / "base", GPT.build(tiny_model_config(tok.vocab_size, seq_len=96), seed=1), tok)
    vc = tiny_model_config(tok.vocab_size, vision=True).vision
    weights = {}
    for steps in (1, 3):
        out = tmp_path / f"sft{steps}"
        summary = run_sft(SFTConfig(
            base=str(tmp_path / "base"), data=[str(world / "chat" / "sft.jsonl")], out=str(out), max_steps=steps,
            batch_size=2, vision=vc, captions=str(world / "captions.jsonl"), tower_steps=2, tower_batch_size=2,
            freeze_tower=True, val_fraction=0.3, quiet=True, eval_every=100))
        assert summary["tower_frozen"] and read_config(out)["tower_frozen"]
        weights[steps] = load_file(str(out / "model.safetensors"))
    tower = [k for k in weights[1] if k.startswith("vision.")]
    projector = [k for k in weights[1] if k.startswith("projector.")]
    assert tower and projector
    # the tower stage ran the same way in both runs; after it, two more main steps move everything but the tower
    assert all(torch.equal(weights[1][k], weights[3][k]) for k in tower)
    assert any(not torch.equal(weights[1][k], weights[3][k]) for k in projector)
    assert not torch.equal(weights[1]["lm.lm_head.weight"], weights[3]["lm.lm_head.weight"])
    with pytest.raises(UserError, match="with --freeze-tower"):  # its optimizer state has no tower in it
        run_sft(SFTConfig(base=str(tmp_path / "base"), data=[str(world / "chat" / "sft.jsonl")],
                          out=str(tmp_path / "sft3"), max_steps=5, batch_size=2, vision=vc, resume=True,
                          quiet=True))


def test_sft_cli_reports_bad_data(tmp_path, tiny_tokenizer):
    from tinygpt4.cli import main

    save_model(tmp_path / "base", GPT.build(tiny_model_config(tiny_tokenizer.vocab_size), seed=1), tiny_tokenizer)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "wizard", "content": "hi"}]}\n')
    assert main(["sft", "--base", str(tmp_path / "base"), "--data", str(bad), "--out", str(tmp_path / "o")]) == 2


def test_sft_cli_tower_steps_need_captions(world, tmp_path, tiny_tokenizer, capsys):
    from tinygpt4.cli import main

    save_model(tmp_path / "base", GPT.build(tiny_model_config(tiny_tokenizer.vocab_size), seed=1), tiny_tokenizer)
    argv = ["sft", "--base", str(tmp_path / "base"), "--data", str(world / "chat" / "sft.jsonl"),
            "--out", str(tmp_path / "o"), "--tower-steps", "5"]
    assert main(argv) == 2
    assert "--tower-steps trains the vision tower on --captions" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
