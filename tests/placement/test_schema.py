import json

import pytest

from moeplace.errors import InputError
from moeplace.placement.presets import CLUSTER_PRESETS, MODEL_PRESETS, load_cluster, load_model, register_model


def test_seed_model_matches_the_seed_document():
    m = load_model("seed")
    assert m.num_layers == 61 and m.moe_layer_numbers[0] == 4 and m.moe_layer_numbers[-1] == 61
    assert m.num_moe_layers == 58 and m.num_items == 1856
    assert m.token_bytes == 14336
    assert m.expert_params == 3 * 7168 * 2048


def test_seed_cluster_has_1856_gpus():
    c = load_cluster("seed")
    assert c.num_gpus == 1856 and c.num_nodes == 232
    assert c.gpu.memory_gb == 64 and c.gpu.bf16_tflops == 400
    assert load_cluster("h100-sxm").gpu.memory_gb == 80


def test_presets_cover_the_issue():
    assert {"seed", "deepseek-v3", "mixtral-8x7b", "qwen3-30b-a3b"} <= set(MODEL_PRESETS)
    assert {"seed", "h100-sxm", "h200"} <= set(CLUSTER_PRESETS)
    assert MODEL_PRESETS["deepseek-v3"].num_experts == 256 and MODEL_PRESETS["deepseek-v3"].top_k == 8
    assert MODEL_PRESETS["mixtral-8x7b"].num_moe_layers == 32


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_model("seed", MODEL_PRESETS["seed"])


def test_unknown_preset_names_the_option():
    with pytest.raises(InputError, match=r"--model: unknown model preset 'nope'"):
        load_model("nope")


def test_model_file_toml_with_preset_base(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('preset = "seed"\nname = "seed-top4"\ntop_k = 4\n')
    m = load_model(str(f))
    assert m.top_k == 4 and m.num_experts == 32 and m.name == "seed-top4"


def test_model_file_json(tmp_path):
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"num_layers": 2, "num_experts": 4, "top_k": 2, "hidden": 8, "expert_hidden": 4,
                             "num_heads": 1, "head_dim": 8}))
    assert load_model(str(f)).num_items == 8


def test_bad_field_names_file_field_and_value(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('preset = "seed"\ntop_k = 0\n')
    with pytest.raises(InputError) as err:
        load_model(str(f))
    assert str(err.value) == f"{f}: top_k: Input should be greater than 0 (got 0)"


def test_top_k_above_experts_is_refused(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('preset = "seed"\ntop_k = 40\n')
    with pytest.raises(InputError, match="top_k=40 exceeds num_experts=32"):
        load_model(str(f))


def test_malformed_toml(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text("top_k = = 2\n")
    with pytest.raises(InputError, match=r"m\.toml: malformed TOML"):
        load_model(str(f))


def test_cluster_file_with_gpu_preset_and_override(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('preset = "seed"\ngpu = "h200"\nnum_nodes = 4\n')
    c = load_cluster(str(f), gpus_per_node=4)
    assert c.gpu.memory_gb == 141 and c.num_nodes == 4 and c.gpus_per_node == 4


def test_unknown_field_is_refused(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"preset": "seed", "num_gpus": 3}))
    with pytest.raises(InputError, match="num_gpus: Extra inputs are not permitted"):
        load_cluster(str(f))
