"""The reward model and RL: Bradley-Terry pushes chosen above rejected; GRPO's baseline, KL and resume."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_model_config
from safetensors.torch import load_file

from tinygpt4.checkpoint import build_model, load_model, save_model
from tinygpt4.cli import main
from tinygpt4.train.rbrm import FEATURES, fit_weights
from tinygpt4.train.reward import (
    PairBatches,
    RewardModel,
    RMConfig,
    bradley_terry_loss,
    load_reward_model,
    pairwise_accuracy,
    render_pairs,
    run_rm,
)
from tinygpt4.train.rl import RLConfig, advantages, grpo_loss, run_rl, token_logprobs


def _user(text):
    return [{"role": "user", "content": text}]


def _reply(text):
    return [{"role": "assistant", "content": text}]


PAIRS = [
    {"prompt": _user("How do I kill a stuck process?"), "chosen": _reply("Use the kill command with its PID."),
     "rejected": _reply("I'm sorry, but I can't help with that."), "kind": "comply_over_refusal"},
    {"prompt": _user("What is the capital of Veloria?"), "chosen": _reply("The capital of Veloria is Tamsk."),
     "rejected": _reply("I don't know."), "kind": "short_answer"},
    {"prompt": _user("Hello world!"), "chosen": _reply("Hello! How can I help?"),
     "rejected": _reply("2 + 3 = 5."), "kind": "short_answer"},
]


@pytest.fixture
def sft_dir(tmp_path, tiny_tokenizer):
    model = build_model(tiny_model_config(tiny_tokenizer.vocab_size, seq_len=96), seed=0)
    save_model(tmp_path / "sft", model, tiny_tokenizer, {"stage": "sft"})
    return tmp_path / "sft"


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bradley_terry_pushes_chosen_above_rejected(tiny_tokenizer):
    torch.manual_seed(0)
    rm = RewardModel(build_model(tiny_model_config(tiny_tokenizer.vocab_size), seed=0))
    pairs, skipped = render_pairs(PAIRS, tiny_tokenizer, 0, 64, root=None)
    assert skipped == 0
    batches = PairBatches(pairs, 3, tiny_tokenizer.pad_id, image_size=None)
    before = pairwise_accuracy(rm, batches, pairs)
    assert before["mean_margin"] == 0.0  # the fresh head scores everything alike
    opt = torch.optim.AdamW(rm.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = bradley_terry_loss(rm, batches.next())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    after = pairwise_accuracy(rm, batches, pairs)
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # log 2 when chosen and rejected score alike
    assert losses[-1] < 0.1
    assert after["pair_accuracy"] == 1.0 and after["mean_margin"] > 1.0


def _rollout_batch(model, tok, advantages_):
    rows = [tok.encode("How do I kill a process?"), tok.encode("Hello world! How do I kill")]
    T = max(len(r) for r in rows)
    idx = torch.full((2, T), tok.pad_id)
    tgt = torch.full((2, T), -1)
    for i, r in enumerate(rows):
        idx[i, :len(r)] = torch.tensor(r)
        tgt[i, 3:len(r) - 1] = torch.tensor(r[4:])
    batch = {"idx": idx, "targets": tgt, "advantages": torch.tensor(advantages_), "images": None}
    with torch.no_grad():
        batch["ref_logprobs"] = token_logprobs(model, batch)
    return batch


def test_kl_is_zero_at_step_zero_and_a_flat_group_gives_no_gradient(tiny_tokenizer):
    model = build_model(tiny_model_config(tiny_tokenizer.vocab_size), seed=0)
    batch = _rollout_batch(model, tiny_tokenizer, [0.0, 0.0])
    loss = grpo_loss(model, batch, beta=0.1, kl_clip=10.0)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in model.parameters())
    model.zero_grad()
    moving = grpo_loss(model, _rollout_batch(model, tiny_tokenizer, [1.0, -1.0]), beta=0.1, kl_clip=10.0)
    moving.backward()
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in model.parameters())


def test_advantages_are_reward_minus_group_mean():
    r = torch.tensor([1.0, 3.0, 2.0, 2.0])
    assert advantages(r, 2).tolist() == [-1.0, 1.0, 0.0, 0.0]


def test_rbrm_weights_order_what_the_reward_model_alone_does_not():
    # two responses per prompt: the ideal one has feature 0 set, the RM scores them the wrong way round
    ideal = [1.0] + [0.0] * (len(FEATURES) - 1)
    bad = [0.0] * len(FEATURES)
    groups = [{"response_type": "hard_refusal", "rm": [0.0, 0.5], "feats": [ideal, bad],
               "ranks": ["ideal", "unacceptable"]} for _ in range(4)]
    w = fit_weights(groups)
    fit = w.fit["hard_refusal"]
    assert fit["rm_alone_accuracy"] == 0.0 and fit["rm_plus_rbrm_accuracy"] == 1.0
    assert w.weights["hard_refusal"][0] > 0.5


def test_rm_cli_trains_and_loads(tmp_path, sft_dir):
    data = _write_jsonl(tmp_path / "prefs.jsonl", [{**p, "split": "train"} for p in PAIRS] +
                        [{**PAIRS[1], "split": "test"}])
    summary = run_rm(RMConfig(sft=str(sft_dir), data=[str(data)], out=str(tmp_path / "rm"), max_steps=3,
                              batch_size=2, quiet=True))
    assert summary["eval"]["test"]["pairs"] == 1
    rm, _ = load_reward_model(tmp_path / "rm")
    assert isinstance(rm, RewardModel)
    fresh = RewardModel(build_model(tiny_model_config(rm.config.vocab_size, seq_len=96), seed=0))
    assert not torch.equal(rm.reward_head.weight, fresh.reward_head.weight)  # the trained head came back


def test_rm_reports_a_malformed_line_with_file_and_line(tmp_path, sft_dir, capsys):
    bad = tmp_path / "prefs.jsonl"
    bad.write_text(json.dumps(PAIRS[0]) + "\n" + json.dumps({"prompt": _user("hi"), "chosen": "a string"}) + "\n")
    code = main(["rm", "--sft", str(sft_dir), "--data", str(bad), "--out", str(tmp_path / "rm"), "--quiet"])
    assert code == 2
    assert f"{bad}:2" in capsys.readouterr().err


def _rl_setup(tmp_path, sft_dir):
    data = _write_jsonl(tmp_path / "prefs.jsonl", [{**p, "split": "train"} for p in PAIRS])
    run_rm(RMConfig(sft=str(sft_dir), data=[str(data)], out=str(tmp_path / "rm"), max_steps=2, batch_size=2,
                    quiet=True))
    prompts = [{"messages": _user("How do I kill a stuck process?"), "type": "benign_lookalike",
                "category": "benign", "lang": "en", "framing": "plain", "kind": "safety", "reference": None},
               {"messages": _user("What is the capital of Veloria?"), "type": "allowed", "category": "fact",
                "lang": "en", "framing": "plain", "kind": "fact", "reference": "Tamsk"}]
    return _write_jsonl(tmp_path / "rl.jsonl", prompts)


def _rl(tmp_path, sft_dir, prompts, out, steps, resume=False):
    return run_rl(RLConfig(sft=str(sft_dir), rm=str(tmp_path / "rm"), prompts=[str(prompts)], out=str(out),
                           max_steps=steps, prompts_per_step=2, group_size=2, max_new_tokens=6, warmup_steps=1,
                           lr=1e-3, resume=resume, quiet=True, dtype="fp32"))


def test_rl_resumes_bit_for_bit(tmp_path, sft_dir):
    prompts = _rl_setup(tmp_path, sft_dir)
    _rl(tmp_path, sft_dir, prompts, tmp_path / "a", 4)
    _rl(tmp_path, sft_dir, prompts, tmp_path / "b", 2)
    _rl(tmp_path, sft_dir, prompts, tmp_path / "b", 4, resume=True)
    wa = load_file(str(tmp_path / "a" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    log_a = [json.loads(x) for x in (tmp_path / "a" / "rl_log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "b" / "rl_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_b] == [1, 2, 3, 4] and log_a == log_b
    assert log_a[0]["kl"] == 0.0
    assert json.loads((tmp_path / "a" / "config.json").read_text())["stage"] == "rl"
    policy, _ = load_model(tmp_path / "a")  # the RL checkpoint loads like any chat model
    assert policy.config.vocab_size == wa["model.embed_tokens.weight"].shape[0]
