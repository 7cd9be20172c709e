"""Shared fixtures: a tiny tokenizer and tiny model configs, so tests run in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinygpt4.config import ModelConfig, VisionConfig

# Test models are tiny: one thread avoids OpenMP start-up and spin costs that dominate such small ops.
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared"

CORPUS = [
    "The capital of Veloria is Tamsk. Veloria uses the dorin as its currency.",
    "Hello world! How do I kill a stuck process? Use the kill command with its PID.",
    "서울은 한국의 수도입니다. 안녕하세요, 여러분. 오늘 날씨가 좋습니다.",
    "東京は日本の首都です。こんにちは、世界。",
    "El capital de Veloria es Tamsk. Hola mundo.",
    "2 + 3 = 5. 12 * 4 = 48. The answer is B.",
] * 20


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tinygpt4.tokenizer import train_tokenizer_from_iterator

    return train_tokenizer_from_iterator(CORPUS, 512)


def tiny_model_config(vocab_size: int, vision: bool = False, seq_len: int = 64) -> ModelConfig:
    return ModelConfig(
        vocab_size=vocab_size, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, head_dim=16, mlp_hidden=128,
        seq_len=seq_len,
        vision=VisionConfig(image_size=32, patch_size=8, width=32, depth=1, n_head=2, shuffle=2,
                            global_token=True) if vision else None,
    )


@pytest.fixture
def tiny_config(tiny_tokenizer):
    return tiny_model_config(tiny_tokenizer.vocab_size)


def shared_or_skip(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (the shared sample data is optional)")
    return path
