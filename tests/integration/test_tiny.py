"""The embedded tiny family: deterministic, offline, loadable by transformers, chat-ready."""

import json
from pathlib import Path

import pytest

from medarena.registry import load_registry
from medarena.tiny import MANIFEST, build_tiny, read_manifest
from tests.conftest import REPO


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, tiny_model_dir: Path):
    reference = read_manifest(tiny_model_dir)
    again = build_tiny(tmp_path / "again", seed=0)
    other = build_tiny(tmp_path / "other", seed=1)
    assert again.weights_sha256 == reference.weights_sha256
    assert again.tokenizer_sha256 == reference.tokenizer_sha256
    assert other.weights_sha256 != reference.weights_sha256
    assert other.tokenizer_sha256 == reference.tokenizer_sha256  # the tokenizer has no seed


def test_an_identical_build_is_reused_and_force_rebuilds(tmp_path: Path):
    out = tmp_path / "tiny"
    first = build_tiny(out, seed=3)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert build_tiny(out, seed=3) == first
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    rebuilt = build_tiny(out, seed=3, force=True)
    assert rebuilt.weights_sha256 == first.weights_sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no staging folders left


def test_loads_with_transformers_and_runs(tiny_model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.head_dim) == (2, 64, 32)
    assert config.vocab_size == len(tokenizer)

    ids = tokenizer("Metformin lowers hepatic glucose output.", return_tensors="pt").input_ids
    assert ids[0, 0].item() == tokenizer.bos_token_id
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == (
        "Metformin lowers hepatic glucose output."
    )
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()


def test_special_tokens_are_single_tokens(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for token in ("<|im_start|>", "<|im_end|>", "<pad>", "</s>"):
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert tokenizer(token, add_special_tokens=False).input_ids == [
            tokenizer.convert_tokens_to_ids(token)
        ]


def test_parameter_count_matches_the_card(tiny_model_dir: Path):
    card = load_registry(REPO).variant("tiny-medical-base").variant
    built = read_manifest(tiny_model_dir).num_parameters
    assert built / 1e9 == pytest.approx(card.params_b, rel=0.05)


def test_chat_template_is_the_registry_one(tmp_path: Path):
    from transformers import AutoTokenizer

    template = load_registry(REPO).chat_template("chatml")
    out = tmp_path / "chat"
    build_tiny(out, seed=0, chat_template=template.template)
    tokenizer = AutoTokenizer.from_pretrained(out)
    messages = [{"role": "user", "content": "Dose?"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == template.render(messages, add_generation_prompt=True)
    assert json.loads((out / MANIFEST).read_text())["chat_template"] == template.template
