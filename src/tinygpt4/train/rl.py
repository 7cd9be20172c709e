"""Reinforcement learning from the reward model and the rule-based rewards: `tinygpt4 rl` (GRPO family).

Every step samples G responses to each of a few prompts from the current policy (on-policy), scores them
(train/rbrm.py: reward model + fitted RBRM weights on safety prompts), and takes the group mean as the
baseline: a response's advantage is its reward minus its group's mean, so a group whose responses all
score the same teaches nothing. The loss is token-level and normalised by the number of response tokens in
the batch (the Dr GRPO / DAPO correction: a long response does not get a smaller per-token step than a short
one), plus β times the KL to the frozen SFT model, estimated per token with Schulman's k3 estimator
exp(r) - r - 1, r = log π_ref - log π clipped. One gradient step per batch of samples, so the policy ratio
is 1 and needs no clipping.

The steps run in the shared training loop (optimizer, schedule, checkpoints, exact resume, progress bar):
the rollouts are its batch source, whose position (prompt order, step) is saved with the checkpoint and
whose sampling is seeded by (seed, step), so a resumed run draws exactly the samples the first one would
have. Per step, rl_log.jsonl records mean reward, KL, the share of groups with zero reward spread, the
refusal rate on benign prompts and the mean response length.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinygpt4.chat import render_chat
from tinygpt4.checkpoint import load_model
from tinygpt4.data.images import ImageCache, normalize_pixels
from tinygpt4.data.readers import image_root_for, read_rl_prompts, read_rubric
from tinygpt4.engine import Engine
from tinygpt4.errors import UserError
from tinygpt4.runtime import autocast, compute_dtype, resolve_device
from tinygpt4.safety import rubric
from tinygpt4.safety.graders import load_grader
from tinygpt4.tokenizer import Tokenizer
from tinygpt4.train.cli_args import add_option, add_run_options, config_from_args
from tinygpt4.train.loop import JsonlLog, TrainConfig, train
from tinygpt4.train.rbrm import (
    RBRMWeights,
    features,
    fit_weights,
    graded,
    groups_from_rubric,
    prompt_type,
    rm_scores,
)
from tinygpt4.train.reward import load_reward_model


@dataclass
class RLConfig:
    sft: str
    rm: str
    prompts: list[str]
    out: str
    grader: str = "regex"           # the RBRM grader: "regex", a trained classifier folder, or judge:URL
    rubric: list[str] = field(default_factory=list)  # rubric-labelled responses to fit the RBRM weights on
    max_steps: int = 60
    prompts_per_step: int = 8
    group_size: int = 4             # G samples per prompt
    max_new_tokens: int = 40
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.05              # KL penalty to the SFT model
    kl_clip: float = 10.0           # |log π_ref - log π| clipped before the k3 estimator
    rbrm_scale: float = 1.0         # multiplies the fitted RBRM weights
    lr: float = 2e-5
    warmup_steps: int = 5
    eval_every: int = 1000
    save_every: int = 0
    log_every: int = 1
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    optimizer: str = "adamw"
    compile: str = "off"            # rollouts change shapes every step: compiling would not pay
    quiet: bool = False
    extra: dict = field(default_factory=dict)


# ---- the reward -------------------------------------------------------------------------------------------

class Reward:
    """reward(record, response) = RM score + fitted RBRM weights · grader features (graded prompts only)."""

    def __init__(self, rm, tok: Tokenizer, grader, weights: RBRMWeights, scale: float = 1.0):
        self.rm, self.tok, self.grader, self.weights, self.scale = rm, tok, grader, weights, scale

    def __call__(self, records: list[dict], responses: list[str], images: list[list] | None = None) -> tuple[
            list[float], list]:
        """(rewards, grades) for each (prompt record, response); grades are None where the graders abstain."""
        scores = rm_scores(self.rm, self.tok, [r["messages"] for r in records], responses, images=images)
        which = [i for i, r in enumerate(records) if graded(r)]
        grades: list = [None] * len(records)
        if which:
            done = self.grader.grade_many([(records[i]["messages"], responses[i], prompt_type(records[i]),
                                            records[i].get("category")) for i in which])
            for i, g in zip(which, done):
                grades[i] = g
                scores[i] += self.scale * self.weights.value(records[i], features(g))
        return scores, grades


# ---- rollouts ---------------------------------------------------------------------------------------------

@dataclass
class Prompt:
    record: dict
    ids: list[int]
    images: list[tuple[str, str]]


def advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Reward minus its group's mean (no division by the group's spread: Dr GRPO)."""
    r = rewards.view(-1, group_size)
    return (r - r.mean(dim=1, keepdim=True)).reshape(-1)


class Rollouts:
    """The RL batch source: each next() samples, scores and packs one step's groups. Position: the prompt
    order's epoch and index, and the step (which seeds the sampling)."""

    def __init__(self, policy, ref, reward: Reward, tok: Tokenizer, prompts: list[Prompt], cfg: RLConfig,
                 dtype: torch.dtype, log_path: Path):
        self.policy, self.ref, self.reward, self.tok, self.prompts, self.cfg = policy, ref, reward, tok, prompts, cfg
        self.dtype, self.device = dtype, next(policy.parameters()).device
        vision = getattr(policy.config, "vision", None)
        self.images = ImageCache(vision.image_size) if vision else None
        self.log = JsonlLog(log_path, True)
        self.epoch = self.pos = self.step = 0

    def _pick(self) -> list[Prompt]:
        out = []
        while len(out) < self.cfg.prompts_per_step:
            order = np.random.default_rng([self.cfg.seed, self.epoch]).permutation(len(self.prompts))
            out.append(self.prompts[int(order[self.pos])])
            self.pos += 1
            if self.pos == len(self.prompts):
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def _pictures(self, rows: list[Prompt]) -> list[list[torch.Tensor]] | None:
        """Each row's images as normalised [3, S, S] tensors (None: no row has any)."""
        if self.images is None or not any(p.images for p in rows):
            return None
        return [list(normalize_pixels([self.images.get(*im) for im in p.images])) if p.images else []
                for p in rows]

    def _sample(self, rows: list[Prompt], pics) -> tuple[list[list[int]], list[str], list[bool]]:
        engine = Engine(self.policy, self.tok, dtype=self.dtype)
        done = engine.generate([p.ids for p in rows], max_new_tokens=self.cfg.max_new_tokens,
                               temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                               seed=self.cfg.seed * 1_000_003 + self.step, images=pics)
        self.policy.train()
        return [c.token_ids for c in done], [c.text for c in done], [c.finish_reason == "stop" for c in done]

    def next(self) -> dict:
        rows = [p for p in self._pick() for _ in range(self.cfg.group_size)]
        pics = self._pictures(rows)
        resp_ids, texts, stopped = self._sample(rows, pics)
        rewards, grades = self.reward([p.record for p in rows], texts, images=pics)
        r = torch.tensor(rewards, dtype=torch.float32)
        batch = self._pack(rows, resp_ids, stopped, advantages(r, self.cfg.group_size), pics)
        batch["stats"] = self._stats(rows, r, grades, resp_ids)
        self.step += 1
        return batch

    def _pack(self, rows: list[Prompt], resp_ids: list[list[int]], stopped: list[bool], adv: torch.Tensor,
              pics) -> dict:
        """Prompt + response rows, right-padded; targets mark the response tokens (and the end-of-turn
        when the response ended), with the reference model's log-probabilities there."""
        seqs = [p.ids + r + ([self.tok.eot_id] if s else []) for p, r, s in zip(rows, resp_ids, stopped)]
        T = max(len(s) for s in seqs) - 1
        idx = torch.full((len(seqs), T), self.tok.pad_id, dtype=torch.long)
        tgt = torch.full((len(seqs), T), -1, dtype=torch.long)
        for i, (p, s) in enumerate(zip(rows, seqs)):
            idx[i, :len(s) - 1] = torch.tensor(s[:-1])
            start = len(p.ids) - 1
            tgt[i, start:len(s) - 1] = torch.tensor(s[start + 1:])
        flat = [im for row in (pics or []) for im in row]
        batch = {"idx": idx, "targets": tgt, "advantages": adv, "images": torch.stack(flat) if flat else None}
        with torch.no_grad(), autocast(self.device, self.dtype):
            batch["ref_logprobs"] = token_logprobs(self.ref, {k: _to(v, self.device) for k, v in batch.items()})
        return batch

    def _stats(self, rows: list[Prompt], r: torch.Tensor, grades: list, resp_ids: list[list[int]]) -> dict:
        spread = r.view(-1, self.cfg.group_size).std(dim=1, unbiased=False)
        benign = [g for p, g in zip(rows, grades) if g is not None and not g.abstained
                  and prompt_type(p.record) in ("benign_lookalike", "allowed") and p.record.get("kind") == "safety"]
        disallowed = [g for p, g in zip(rows, grades) if g is not None and not g.abstained
                      and prompt_type(p.record) == "disallowed"]
        return {"step": self.step + 1, "reward": round(float(r.mean()), 5),
                "zero_spread_groups": round(float((spread < 1e-6).float().mean()), 4),
                "benign_refusal_rate": _share(benign, lambda g: rubric.is_refusal(g.propositions)),
                "disallowed_refusal_rate": _share(disallowed, lambda g: rubric.is_refusal(g.propositions)),
                "response_tokens": round(float(np.mean([len(x) for x in resp_ids])), 2)}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "step": self.step, "n_prompts": len(self.prompts),
                "seed": self.cfg.seed}

    def load_state_dict(self, d: dict) -> None:
        if (d.get("n_prompts"), d.get("seed")) != (len(self.prompts), self.cfg.seed):
            raise UserError("cannot resume RL: other prompts or another seed")
        self.epoch, self.pos, self.step = int(d["epoch"]), int(d["pos"]), int(d["step"])
        self.log.truncate_after(self.step)


def _share(items: list, pred) -> float | None:
    return round(sum(1 for g in items if pred(g)) / len(items), 4) if items else None


def _to(v, device):
    return v.to(device) if torch.is_tensor(v) else v


def token_logprobs(model, batch: dict) -> torch.Tensor:
    """log π(target) at every position with a target, in row-major order [N] (fp32)."""
    keep = batch["targets"] != -1
    kw = {"images": batch["images"]} if batch.get("images") is not None else {}
    logits = model(batch["idx"], logits_at=keep, **kw).float()
    return torch.gather(F.log_softmax(logits, -1), 1, batch["targets"][keep][:, None]).squeeze(1)


def grpo_loss(policy, batch: dict, *, beta: float, kl_clip: float, log: JsonlLog | None = None) -> torch.Tensor:
    """Token-level policy gradient (normalised by the batch's response tokens) + β·KL (k3) to the reference."""
    keep = batch["targets"] != -1
    logp = token_logprobs(policy, batch)
    n_tok = max(int(keep.sum()), 1)
    adv_tok = batch["advantages"].to(logp.device)[:, None].expand_as(keep)[keep]
    pg = -(adv_tok * logp).sum() / n_tok
    log_ratio = (batch["ref_logprobs"] - logp).clamp(-kl_clip, kl_clip)
    kl_tok = torch.exp(log_ratio) - log_ratio - 1
    kl = kl_tok.sum() / n_tok
    if log is not None and batch.get("stats"):
        log.write({**batch["stats"], "kl": round(float(kl.detach()), 6), "pg_loss": round(float(pg.detach()), 6)})
    return pg + beta * kl


# ---- the stage ----------------------------------------------------------------------------------------------

def load_prompts(paths: list[str], tok: Tokenizer, image_tokens: int, max_len: int) -> tuple[list[Prompt], dict]:
    """The RL prompts rendered for generation; ones too long (leaving no room to answer) are skipped."""
    records = read_rl_prompts(paths)
    refs = [p["image_url"]["url"] for r in records for m in r["messages"] if isinstance(m.get("content"), list)
            for p in m["content"] if p.get("type") == "image_url"]
    root = image_root_for(paths[0], refs) if refs else Path(paths[0]).parent.resolve()
    out, skipped, kinds = [], 0, {}
    for rec in records:
        r = render_chat(rec["messages"], tok, image_tokens=image_tokens, add_generation_prompt=True,
                        load_images=False)
        if len(r.ids) > max_len:
            skipped += 1
            continue
        if r.images and not image_tokens:
            skipped += 1  # a text-only policy cannot see the picture the prompt asks about
            continue
        out.append(Prompt(rec, r.ids, [(str(root), ref) for ref in r.images]))
        kinds[rec.get("kind", "")] = kinds.get(rec.get("kind", ""), 0) + 1
    if not out:
        raise UserError(f"no usable RL prompts in {', '.join(paths)}")
    return out, {"prompts": len(out), "skipped": skipped, "by_kind": kinds}


def build_reward(cfg: RLConfig, device: torch.device, out: Path) -> Reward:
    """The reward model, the grader and the RBRM weights (fitted on cfg.rubric, or kept from a previous
    fit of this run)."""
    rm, tok = load_reward_model(cfg.rm, device=device)
    rm.requires_grad_(False)
    grader = load_grader(cfg.grader)
    path = out / "rbrm.json"
    if path.exists() and cfg.resume:
        weights = RBRMWeights.load(path)
    elif cfg.rubric:
        weights = fit_weights(groups_from_rubric(read_rubric(cfg.rubric), rm, tok, grader), seed=cfg.seed)
        out.mkdir(parents=True, exist_ok=True)
        weights.save(path)
    else:
        weights = RBRMWeights()
    return Reward(rm, tok, grader, weights, cfg.rbrm_scale)


def run_rl(cfg: RLConfig) -> dict:
    if cfg.group_size < 2:
        raise UserError("--group-size must be at least 2 (the group mean is the baseline)")
    if cfg.beta <= 0:
        raise UserError("--beta must be > 0 (the KL penalty keeps the policy near the SFT model)")
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    policy, tok = load_model(cfg.sft, device=str(device))
    ref = copy.deepcopy(policy).eval().requires_grad_(False)
    policy.train()
    image_tokens = policy.tokens_per_image if getattr(policy.config, "vision", None) else 0
    prompts, stats = load_prompts(cfg.prompts, tok, image_tokens, policy.config.seq_len - cfg.max_new_tokens - 1)
    reward = build_reward(cfg, device, out)
    dtype = compute_dtype(device, cfg.dtype, training=True)
    rollouts = Rollouts(policy, ref, reward, tok, prompts, cfg, dtype, out / "rl_log.jsonl")
    if not cfg.resume and (out / "rl_log.jsonl").exists():
        (out / "rl_log.jsonl").unlink()
    tc = TrainConfig(max_steps=cfg.max_steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps, eval_every=cfg.eval_every,
                     save_every=cfg.save_every, log_every=cfg.log_every, dtype=cfg.dtype, compile=cfg.compile,
                     seed=cfg.seed, quiet=cfg.quiet, optimizer=cfg.optimizer, weight_decay=0.0, min_lr_frac=1.0)

    def loss_fn(model, batch):
        return grpo_loss(model, batch, beta=cfg.beta, kl_clip=cfg.kl_clip, log=rollouts.log)

    summary = train(policy, rollouts, tc, out, tokenizer=tok, resume=cfg.resume, loss_fn=loss_fn,
                    extra_config={"stage": "rl", "sft": str(cfg.sft), "rm": str(cfg.rm), "grader": cfg.grader,
                                  **_rl_settings(cfg), **cfg.extra},
                    summary_extra={"data": stats, "rbrm_fit": reward.weights.fit})
    return summary


def _rl_settings(cfg: RLConfig) -> dict:
    keep = ("max_steps", "prompts_per_step", "group_size", "max_new_tokens", "temperature", "top_p", "beta",
            "kl_clip", "rbrm_scale", "lr")
    return {"rl": {k: getattr(cfg, k) for k in keep}}


def register(sub) -> None:
    p = sub.add_parser("rl", help="RL from the reward model and rule-based rewards (GRPO)",
                       description="On-policy group sampling (GRPO) from an SFT model: G samples per prompt, "
                       "group-mean baseline, token-level loss, KL (k3) to the SFT model. Reward: the reward "
                       "model's score plus rubric grader features weighted by a hinge fit on ordered responses.")
    p.add_argument("--sft", required=True, metavar="DIR")
    p.add_argument("--rm", required=True, metavar="DIR", help="a reward model from `tinygpt4 rm`")
    p.add_argument("--prompts", required=True, nargs="+", metavar="FILE", help="RL prompt JSONL files")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--rubric", nargs="+", default=[], metavar="FILE",
                   help="rubric-labelled responses to fit the RBRM weights on (none: reward model only)")
    add_option(p, RLConfig, "grader", help="regex, a trained grader folder, or judge:URL")
    for name in ("max_steps", "prompts_per_step", "group_size", "max_new_tokens", "warmup_steps", "log_every"):
        add_option(p, RLConfig, name, type=int)
    for name in ("temperature", "top_p", "beta", "kl_clip", "rbrm_scale", "lr"):
        add_option(p, RLConfig, name, type=float)
    add_run_options(p, RLConfig)
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    summary = run_rl(config_from_args(RLConfig, args))
    print(f"RL: {summary['steps']} steps in {summary['wall_s']:.0f}s -> {args.out}")
    return 0
