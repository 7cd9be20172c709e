"""`tinygpt4 run` presets: what each stage is configured to train."""

from tinygpt4.run import RUN_PRESETS, RunContext, pretrain_config


def _ctx(tmp_path, preset):
    return RunContext(tmp_path, preset, 0, "cpu", True, RUN_PRESETS[preset])


def test_the_fast_preset_pretrains_a_narrower_model_of_the_tiny_depth(tmp_path):
    fast = pretrain_config(_ctx(tmp_path, "tiny-fast"))
    assert (fast.model.n_layer, fast.model.n_embd, fast.model.n_head, fast.model.mlp_hidden) == (4, 192, 3, 512)
    assert (fast.preset, fast.lr, fast.max_steps) == ("tiny", 4e-3, 300)
    tiny = pretrain_config(_ctx(tmp_path, "tiny"))
    assert (tiny.model, tiny.lr, tiny.preset, tiny.max_steps) == (None, None, "tiny", 400)
