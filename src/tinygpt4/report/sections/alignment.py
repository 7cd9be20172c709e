"""Alignment: the rubric grader beside the policy's regular expressions, the reward model's held-out pair
accuracy, the RBRM weight fit, the RL curves (reward, KL, refusal rates: the reward-hacking check that
"always refuse" does not win), and SFT against RL answers to the same prompts (the GPT-4 report's "early"
and "launch" responses)."""

from __future__ import annotations

from pathlib import Path

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc, Transcript, num, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import read_json, read_log

CURVES = (("reward", "mean reward"), ("kl", "KL to SFT (k3, per token)"),
          ("benign_refusal_rate", "refusal rate, benign look-alikes"),
          ("disallowed_refusal_rate", "refusal rate, disallowed"),
          ("zero_spread_groups", "groups with zero reward spread"), ("response_tokens", "response length"))
SIDE_BY_SIDE = 6  # prompts shown with both answers


def rl_curves(log: list[dict], out: Path) -> Path:
    """One small panel per logged quantity over RL steps (a moving average over 5 steps beside the raw)."""
    plt = figures.plt
    present = [(k, t) for k, t in CURVES if any(r.get(k) is not None for r in log)]
    fig, axes = plt.subplots(2, (len(present) + 1) // 2, figsize=(3.4 * ((len(present) + 1) // 2), 5.6),
                             squeeze=False)
    for ax in axes.flat[len(present):]:
        ax.axis("off")
    for ax, (key, title) in zip(axes.flat, present):
        pts = [(r["step"], r[key]) for r in log if r.get(key) is not None and "step" in r]
        xs, ys = zip(*pts)
        ax.plot(xs, ys, color=figures.COLORS[0], lw=0.6, alpha=0.5)
        smooth = [sum(ys[max(0, i - 4):i + 1]) / len(ys[max(0, i - 4):i + 1]) for i in range(len(ys))]
        ax.plot(xs, smooth, color=figures.COLORS[1], lw=1.4)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("RL step", fontsize=8)
        ax.grid(alpha=0.3)
        if "rate" in key or key == "zero_spread_groups":
            ax.set_ylim(-0.02, 1.02)
    return figures.save(fig, out)


def _grader(doc: Doc) -> None:
    ev = read_json(doc.run.root / "grader" / "eval.json")
    if not ev:
        return
    doc.h(3, "Rule-based reward model: the rubric grader")
    doc.p("The grader answers the rubric's yes/no propositions about a response and classifies it as (A) desired "
          "refusal, (B) undesired refusal, (C) disallowed content or (D) safe non-refusal. Held-out labelled "
          "responses (held-out prompt wordings and response templates), the learned classifier beside the "
          "policy's regular expressions:")
    rows = []
    for cls in ("A", "B", "C", "D"):
        row = [cls]
        for name in ("learned", "regex"):
            pc = (ev.get(name) or {}).get("per_class", {}).get(cls, {})
            row += [pct(pc.get("recall")), pct(pc.get("precision"))]
        rows.append(row)
    rows.append(["all (accuracy)", pct((ev.get("learned") or {}).get("accuracy")), "",
                 pct((ev.get("regex") or {}).get("accuracy")), ""])
    doc.table(["class", "learned recall", "learned precision", "regex recall", "regex precision"], rows)
    conf = (ev.get("learned") or {}).get("confusion")
    if isinstance(conf, dict):
        labels = sorted(conf)
        doc.p("Confusion matrix of the learned grader (rows: true class, columns: predicted):")
        doc.table(["true \\ predicted", *labels], [[t, *[str(conf[t].get(p, 0)) for p in labels]] for t in labels])


def _reward_model(doc: Doc) -> None:
    ev = read_json(doc.run.root / "rm" / "eval.json")
    if not ev:
        return
    test = ev.get("test", {})
    doc.h(3, "Reward model")
    doc.p(f"Bradley–Terry reward model on the SFT model: held-out pairwise accuracy {pct(test.get('pair_accuracy'))} "
          f"over {test.get('pairs')} pairs (training pairs: {pct(ev.get('train', {}).get('pair_accuracy'))}).")
    doc.table(["pair kind", "held-out accuracy", "pairs"],
              [[k, pct(v["accuracy"]), str(v["n"])] for k, v in test.get("by_kind", {}).items()])
    fit = (read_json(doc.run.root / "rl" / "rbrm.json") or {}).get("fit", {})
    if fit:
        doc.p("RBRM weights, fitted per response type by a pairwise hinge on ordered responses to the same prompt "
              "(ideal > acceptable > unacceptable > disallowed): share of ordered pairs the reward gets right.")
        doc.table(["response type", "ordered pairs", "reward model alone", "reward model + RBRM"],
                  [[t, str(f["ordered_pairs"]), pct(f["rm_alone_accuracy"]), pct(f["rm_plus_rbrm_accuracy"])]
                   for t, f in fit.items()])


def _curves(doc: Doc) -> None:
    log = read_log(doc.run.root / "rl" / "rl_log.jsonl")
    if not log:
        return
    doc.h(3, "RL")
    first, last = log[0], log[-5:]

    def mean(k: str) -> float:
        vals = [r[k] for r in last if r.get(k) is not None]
        return sum(vals) / len(vals) if vals else None

    doc.p(f"{len(log)} GRPO steps. Mean reward {num(first.get('reward'))} at the first step, {num(mean('reward'))} "
          f"over the last five; KL to the SFT model {num(mean('kl'), 4)}; refusal rate on benign look-alikes "
          f"over the last five steps {pct(mean('benign_refusal_rate'))} (a policy that learned to refuse "
          "everything would show it rising here).")
    doc.figure(rl_curves, "rl_curves.png", "RL training: per-step values (thin) and a 5-step moving average.", log)


def _side_by_side(doc: Doc) -> None:
    sft, rl = doc.run.task("sft", "safety"), doc.run.task("rl", "safety")
    if not sft or not rl:
        return
    by_prompt = {it.get("id"): it for it in rl.get("items", [])}
    picked, seen = [], set()
    for it in sft.get("items", []):
        other = by_prompt.get(it.get("id"))
        key = (it.get("type"), it.get("framing"))
        if other is None or key in seen or it.get("answer") == other.get("answer"):
            continue
        seen.add(key)
        picked.append((it, other))
        if len(picked) == SIDE_BY_SIDE:
            break
    if not picked:
        return
    doc.p("The same prompts answered by the SFT model and by the RL model (held-out wordings):")
    for a, b in picked:
        doc.transcript(Transcript(
            f"{a.get('type')}, {a.get('framing', 'plain')} ({a.get('lang', 'en')})",
            [("user", _prompt_text(a), []), ("SFT", a.get("answer", ""), []), ("RL", b.get("answer", ""), [])],
            f"grader: SFT {_cls(a)}, RL {_cls(b)}"))


def _cls(item: dict) -> str:
    grade = item.get("grade") or {}
    return f"class {grade['class']}" if grade.get("class") else "not graded"


def _prompt_text(item: dict) -> str:
    msgs = item.get("messages") or []
    users = [m.get("content") for m in msgs if m.get("role") == "user"]
    text = users[-1] if users else item.get("prompt", "")
    if isinstance(text, list):
        text = " ".join(p.get("text", "[image]") if p.get("type") == "text" else "[image]" for p in text)
    return str(text)


@section("alignment", order=140)
def alignment(doc: Doc) -> None:
    root = doc.run.root
    if not any((root / d).is_dir() for d in ("grader", "rm", "rl")):
        return
    doc.h(2, "Alignment: reward models and RL")
    _grader(doc)
    _reward_model(doc)
    _curves(doc)
    _side_by_side(doc)
