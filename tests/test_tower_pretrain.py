"""Vision tower pretraining on captions: IDF-weighted token bags, training that fits them, determinism."""

import json

import pytest
import torch
from conftest import tiny_model_config
from PIL import Image

from tinygpt4.errors import UserError
from tinygpt4.model.vision import VisionTransformer, init_vision_weights
from tinygpt4.train.tower_pretrain import caption_bags, pretrain_tower

SIGNS = {"north": (200, 40, 40), "south": (40, 40, 200), "east": (40, 160, 40), "west": (220, 180, 20)}


def _captions(root, n_each=4):
    """Squares of four colours, each captioned with a word only its colour has; shifted a little each time."""
    (root / "images").mkdir(parents=True)
    lines = []
    for word, rgb in SIGNS.items():
        for j in range(n_each):
            img = Image.new("RGB", (32, 32), (250, 250, 250))
            img.paste(rgb, (4 + j, 6, 24 + j, 26))
            rel = f"images/{word}{j}.png"
            img.save(root / rel)
            lines.append({"image": rel, "text": f"A sign that says {word}."})
    path = root / "captions.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_caption_bags_weight_a_captions_rare_words_over_its_common_ones(tmp_path, tiny_tokenizer):
    bags = caption_bags(_captions(tmp_path), tiny_tokenizer)
    assert bags.targets.shape == (16, len(bags.vocab))
    assert torch.allclose(bags.targets.sum(1), torch.ones(16))
    col = {t: i for i, t in enumerate(bags.vocab)}
    common = [(t,) for t in tiny_tokenizer.encode("A sign that says") if (t,) in col]
    assert common and all(float(bags.targets[:, col[t]].max()) == 0.0 for t in common)  # in every caption
    for i, word in enumerate(SIGNS):  # each caption's weight sits on its own word's tokens
        row = bags.targets[i * 4]
        mine = {col[(t,)] for t in tiny_tokenizer.encode(f" {word}.") if (t,) in col}
        assert float(row[sorted(mine)].sum()) == pytest.approx(1.0)


def test_word_pairs_tell_apart_captions_that_share_their_words(tmp_path, tiny_tokenizer):
    """Which shape has which colour: single-word bags of these two captions are equal, bags with pairs not."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (32, 32), (250, 250, 250)).save(tmp_path / "images" / "x.png")
    texts = ["A red square and a blue circle.", "A blue square and a red circle."] * 2
    path = tmp_path / "captions.jsonl"
    path.write_text("".join(json.dumps({"image": "images/x.png", "text": t}) + "\n" for t in texts))
    words = caption_bags(path, tiny_tokenizer)
    assert torch.equal(words.targets[0], words.targets[1])
    pairs = caption_bags(path, tiny_tokenizer, pairs_min_count=2)
    assert any(len(t) == 2 for t in pairs.vocab)
    assert not torch.equal(pairs.targets[0], pairs.targets[1])
    assert torch.equal(pairs.targets[0], pairs.targets[2]) and torch.allclose(pairs.targets.sum(1), torch.ones(4))
    assert all(len(t) == 1 for t in caption_bags(path, tiny_tokenizer, pairs_min_count=5).vocab)  # none that common


def test_caption_bags_name_the_bad_line(tmp_path, tiny_tokenizer):
    path = _captions(tmp_path)
    path.write_text(path.read_text() + '{"image": "images/north0.png"}\n')
    with pytest.raises(UserError, match=r"captions.jsonl:17:"):
        caption_bags(path, tiny_tokenizer)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_tower_pretraining_fits_the_captions_and_moves_the_tower(tmp_path, tiny_tokenizer, optimizer):
    bags = caption_bags(_captions(tmp_path), tiny_tokenizer)
    vc = tiny_model_config(tiny_tokenizer.vocab_size, vision=True).vision
    torch.manual_seed(0)
    tower = VisionTransformer(vc)
    init_vision_weights(tower, torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    summary = pretrain_tower(tower, bags, steps=60, batch_size=8, lr=3e-3, seed=0, optimizer=optimizer)
    assert summary["steps"] == 60 and summary["images"] == 480 and summary["captions"] == 16
    # a uniform guess over a caption's own word pieces costs log(pieces); across words it costs log(vocab)
    assert summary["first_loss"] > 1.0 and summary["final_loss"] < 0.5 * summary["first_loss"]
    assert any(not torch.equal(before[k], v) for k, v in tower.state_dict().items())


def test_tower_pretraining_is_deterministic(tmp_path, tiny_tokenizer):
    bags = caption_bags(_captions(tmp_path), tiny_tokenizer)
    vc = tiny_model_config(tiny_tokenizer.vocab_size, vision=True).vision
    towers = []
    for _ in range(2):
        tower = VisionTransformer(vc)
        init_vision_weights(tower, torch.Generator().manual_seed(0))
        pretrain_tower(tower, bags, steps=5, batch_size=4, seed=3)
        towers.append(tower.state_dict())
    assert all(torch.equal(towers[0][k], towers[1][k]) for k in towers[0])
