"""Pretraining through the CLI: exact resume after SIGKILL, 2-process DDP, clear errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tinygpt4.cli import main

TEXT = ("The capital of Veloria is Tamsk. Tamsk lies on the river Oru. "
        "The people of Veloria speak Velorian and pay with the dorin. ") * 3


@pytest.fixture
def corpus(tmp_path, tiny_tokenizer):
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"text": f"{i}: {TEXT}"}) + "\n" for i in range(60)))
    tiny_tokenizer.save(tmp_path / "tok")
    return data, tmp_path / "tok"


def _args(data, tok, out, steps=8, extra=()):
    return ["pretrain", "--data", str(data), "--tokenizer", str(tok), "--out", str(out), "--preset", "1",
            "--seq-len", "32", "--batch-size", "4", "--max-steps", str(steps), "--eval-every", "4", "--quiet",
            "--compile", "off", *extra]


def _losses(out: Path) -> dict[int, float]:
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "loss" in r}


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _saved_step(run) -> int | None:
    """The step of the resume state a restart would load. A save swaps a new resume/ in with two renames
    (resume/ -> .resume-old/, new -> resume/), so between them only .resume-old/ holds a state."""
    for name in ("resume", ".resume-old"):
        try:
            return json.loads((run / name / "train_state.json").read_text())["step"]
        except FileNotFoundError:
            continue
    return None


def test_sigkill_then_resume_matches_uninterrupted(corpus, tmp_path):
    data, tok = corpus
    steps = 12
    ref = tmp_path / "ref"
    assert main(_args(data, tok, ref, steps)) == 0
    ref_losses = _losses(ref)

    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tinygpt4.cli", *_args(data, tok, run, steps, ["--save-every", "3"])]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (_saved_step(run) or 0) >= 6:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _saved_step(run)
    assert killed_at is not None and 3 <= killed_at < steps

    assert main(_args(data, tok, run, steps, ["--resume", "--save-every", "3"])) == 0
    resumed = _losses(run)
    assert resumed[steps] == ref_losses[steps]
    assert json.loads((run / "summary.json").read_text())["final_val_loss"] == \
        json.loads((ref / "summary.json").read_text())["final_val_loss"]


def test_two_process_gloo_ddp(corpus, tmp_path):
    data, tok = corpus
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "tinygpt4.cli", *_args(data, tok, out, 4)]
    res = subprocess.run(cmd, env={**_env(), "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["tokens"] == 4 * 4 * 32 * 2  # steps × batch × seq × ranks


def test_malformed_jsonl_names_file_and_line(tmp_path, tiny_tokenizer, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"text": TEXT}) + "\n{not json\n")
    tiny_tokenizer.save(tmp_path / "tok")
    assert main(_args(data, tmp_path / "tok", tmp_path / "out", 2)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bad.jsonl:2" in err and "\n" not in err


def test_bad_paths_exit_2(tmp_path, capsys):
    assert main(["pretrain", "--data", str(tmp_path / "nope"), "--tokenizer", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing")]) == 2


def test_device_names_resolve_to_an_indexed_gpu_or_a_clear_error(monkeypatch):
    """Regression: `--device cuda` reached torch.cuda.set_device without an index and failed with a traceback."""
    from tinygpt4 import runtime
    from tinygpt4.errors import UserError

    assert runtime.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="unknown device"):
        runtime.resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="no CUDA GPU"):
        runtime.resolve_device("cuda")
    precision = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch, "set_float32_matmul_precision", precision.append)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert runtime.resolve_device("cuda") == runtime.resolve_device("auto") == torch.device("cuda", 1)
    assert runtime.resolve_device("cuda:0") == torch.device("cuda", 0)
    assert precision == ["high"] * 3  # fp32 matmuls on the tensor cores (TF32)


def test_compile_auto_only_where_it_pays(tiny_config, monkeypatch):
    from types import SimpleNamespace

    from tinygpt4.train import loop

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    text, vlm = SimpleNamespace(config=tiny_config), SimpleNamespace(config=SimpleNamespace(vision=object()))
    monkeypatch.setattr(loop.shutil, "which", lambda name: "/usr/bin/" + name)
    mode = loop.compile_mode
    assert mode("auto", text, cpu, 600) == "model" and mode("auto", vlm, cuda, 10) == "model"
    assert mode("auto", text, cpu, 50) is None  # the compile would cost more than it saves
    assert mode("auto", vlm, cpu, 600) == "decoder"  # image counts vary: only the decoder has fixed shapes
    assert mode("auto", vlm, cpu, 50) is None
    assert mode("on", vlm, cpu, 1) == "decoder" and mode("on", text, cpu, 1) == "model"
    assert mode("off", text, cuda, 10 ** 6) is None
    monkeypatch.setattr(loop.shutil, "which", lambda name: None)
    assert mode("auto", text, cpu, 600) is None and mode("auto", vlm, cpu, 600) is None  # no C++ compiler


def test_learning_rate_multipliers_by_parameter_prefix():
    from tinygpt4.train.loop import TrainConfig, make_optimizer

    model = torch.nn.ModuleDict({"vision": torch.nn.Linear(4, 4), "lm": torch.nn.Linear(4, 4)})
    opt = make_optimizer(model, TrainConfig(lr=1e-3, lr_mult={"vision.": 4.0}), torch.device("cpu"))
    mult = {id(p): g["lr_mult"] for g in opt.param_groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert [mult[id(p)] for p in model["vision"].parameters()] == [4.0, 4.0]
    assert [mult[id(p)] for p in model["lm"].parameters()] == [1.0, 1.0]
    assert decay[id(model["vision"].weight)] > 0 and decay[id(model["vision"].bias)] == 0
    assert opt.defaults["fused"]  # the fused kernel on CPU too: much faster steps than the per-tensor loop


def test_compiled_training_is_deterministic(corpus, tmp_path):
    """Two compiled runs of one seed end with the same weights on the CPU (regression: inductor's CPU embedding
    backward added rows with atomics from several threads, so the embedding differed after a few steps). On CUDA
    compiled runs differ in the last bits the same way (docs/training-notes.md); training there keeps the fast
    kernels, and eager CUDA runs are bitwise equal."""
    from safetensors.torch import load_file

    data, tok = corpus
    weights = []
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the race needs two threads (the suite runs on one)
    try:
        for name in ("a", "b"):
            out = tmp_path / name
            args = _args(data, tok, out, steps=6, extra=["--batch-size", "8", "--device", "cpu"])
            args[args.index("--compile") + 1] = "on"
            assert main(args) == 0
            weights.append(load_file(out / "model.safetensors"))
    finally:
        torch.set_num_threads(threads)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
