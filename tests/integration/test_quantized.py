"""Quantized variants run, or are refused before loading with what can run them.

GGUF copies of the tiny model (written by medarena.quantize.gguf_export with the `gguf`
package's quantizers) are registered as local variants and evaluated through `medarena eval`;
their per-choice log-likelihoods and accuracy stay within measured bounds of full precision.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medarena.quantize.gguf_export import GGUF_TYPES, export_gguf, main
from tests.helpers import as_json, invoke, sql_rows

# variant -> GGUF type
COPIES = {"tiny-medical-q8": "Q8_0", "tiny-medical-q4": "Q4_0"}
BITS = {"Q8_0": 8, "Q4_0": 4}
TASK = ["-t", "medqa_4options", "--mode", "loglik", "--limit", "20"]


@pytest.fixture(scope="module")
def gguf_copies(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gguf")
    for name, qtype in COPIES.items():
        export_gguf(tiny_model_dir, out / f"{name}.{qtype}.gguf", qtype)
    # the command users run for their own copies
    main([str(tiny_model_dir), str(out / "tiny-medical-f32.F32.gguf"), "--type", "F32"])
    return out


@pytest.mark.parametrize("qtype", sorted(set(GGUF_TYPES) - {"F32"}))
def test_every_exported_type_loads_back_close_to_the_original(tiny_model_dir, tmp_path, qtype):
    import torch
    from transformers import AutoModelForCausalLM

    export_gguf(tiny_model_dir, tmp_path / "copy.gguf", qtype)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loaded = AutoModelForCausalLM.from_pretrained(
        tmp_path, gguf_file="copy.gguf", dtype=torch.float32
    )
    ids = torch.arange(1, 40)[None]
    with torch.no_grad():
        change = (original(ids).logits - loaded(ids).logits).abs().max().item()
    # fewer bits, larger change; measured on the tiny model: F16 ~1e-5 ... Q4_0 ~0.1
    assert 0 < change < {16: 1e-3, 8: 0.02, 5: 0.1, 4: 0.2}[GGUF_TYPES[qtype]]


def test_a_type_the_shape_cannot_take_is_refused_leaving_no_file(tiny_model_dir, tmp_path):
    from medarena.errors import Refused
    from medarena.tiny import TinyShape, build_tiny

    with pytest.raises(Refused, match="'Q9' is not one this exporter writes"):
        export_gguf(tiny_model_dir, tmp_path / "copy.gguf", "Q9")
    narrow = build_tiny(
        tmp_path / "narrow", shape=TinyShape(hidden_size=48, intermediate_size=96, head_dim=24)
    )
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Refused, match=r"Q8_0 packs rows in blocks of 32 weights; tensor .* of 48"):
        export_gguf(narrow.path, out / "copy.gguf", "Q8_0")
    assert list(out.iterdir()) == []  # not even the partial file


def test_an_unquantized_gguf_export_loads_back_exactly(tiny_model_dir, gguf_copies):
    """The control: names, layout and the rotary permutation round-trip bit for bit."""
    import torch
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_copies, gguf_file="tiny-medical-f32.F32.gguf", dtype=torch.float32
    )
    ids = torch.arange(1, 40)[None]
    with torch.no_grad():
        assert torch.equal(original(ids).logits, loaded(ids).logits)


@pytest.fixture
def quant_workspace(eval_workspace: Path, gguf_copies: Path) -> Path:
    variants = [
        {
            "name": name,
            "params_b": 0.000213,
            "source": {"kind": "local", "path": str(gguf_copies / f"{name}.{qtype}.gguf")},
            "context_length": 2048,
            "dtype": "float32",
            "quantization": {"method": "gguf", "bits": BITS[qtype], "scheme": qtype},
            "parent": "tiny-medical-base",
        }
        for name, qtype in COPIES.items()
    ]
    family = {
        "name": "tiny-quantized",
        "display_name": "Tiny Medical, GGUF copies",
        "developer": "medarena tests",
        "license": "apache-2.0",
        "variants": variants,
    }
    (eval_workspace / "models" / "tiny-quantized.yaml").write_text(json.dumps(family))
    return eval_workspace


def choice_logliks(db_url: str, variant: str) -> dict[str, list[float]]:
    found = sql_rows(
        db_url,
        "SELECT p.item_id, p.logprobs FROM predictions p JOIN eval_runs r "
        "ON r.id = p.eval_run_id JOIN model_variants v ON v.id = r.variant_id "
        "WHERE v.name = :variant",
        variant=variant,
    )
    return {item: as_json(logprobs)["loglik"] for item, logprobs in found}


def accuracy(db_url: str, variant: str) -> float:
    [(value,)] = sql_rows(
        db_url,
        "SELECT AVG(CAST(p.correct AS FLOAT)) FROM predictions p JOIN eval_runs r "
        "ON r.id = p.eval_run_id JOIN model_variants v ON v.id = r.variant_id "
        "WHERE v.name = :variant",
        variant=variant,
    )
    return value


def max_change(db_url: str, variant: str) -> float:
    full, quantized = choice_logliks(db_url, "tiny-medical-base"), choice_logliks(db_url, variant)
    assert full.keys() == quantized.keys() and len(full) == 20
    return max(
        abs(a - b) for item in full for a, b in zip(full[item], quantized[item], strict=True)
    )


@pytest.mark.slow
def test_gguf_copies_evaluate_within_bounds_of_full_precision(quant_workspace, db_url):
    for variant in ["tiny-medical-base", *COPIES]:
        result = invoke(quant_workspace, db_url, "eval", "-m", variant, *TASK)
        assert result.exit_code == 0, result.output
    # measured on the tiny model (2026-11-30): largest per-choice change 2.9e-3 nats (Q8_0) and
    # 3.0e-2 (Q4_0); accuracy 0.25 for all three. Bounds: about 3x the measured change.
    assert 0 < max_change(db_url, "tiny-medical-q8") < 0.01
    assert max_change(db_url, "tiny-medical-q8") < max_change(db_url, "tiny-medical-q4") < 0.1
    full = accuracy(db_url, "tiny-medical-base")
    assert abs(accuracy(db_url, "tiny-medical-q8") - full) <= 0.05  # at most 1 of 20 flips
    assert abs(accuracy(db_url, "tiny-medical-q4") - full) <= 0.1
    shown = invoke(quant_workspace, db_url, "results", "--task", "medqa_4options", "--json")
    measured = [row for row in json.loads(shown.stdout) if row["source"] == "measured"]
    beside = {row["variant"]: row["quantization"] for row in measured}
    assert beside == {
        "tiny-medical-base": None,
        "tiny-medical-q8": "GGUF Q8_0 (8-bit)",
        "tiny-medical-q4": "GGUF Q4_0 (4-bit)",
    }
    table = invoke(quant_workspace, db_url, "results", "--task", "medqa_4options")
    assert "quantization" in table.stdout and "Q4_0" in table.stdout


def test_the_gguf_tokenizer_encodes_like_the_original(tiny_model_dir, gguf_copies):
    from transformers import AutoTokenizer

    from medarena.evaluate.engines.hf import gguf_tokenizer

    original = AutoTokenizer.from_pretrained(tiny_model_dir)
    carried = gguf_tokenizer(str(gguf_copies), "tiny-medical-q8.Q8_0.gguf", None)
    text = "Question: Which drug? <|im_start|>A. aspirin</s> ünïcode\n"
    assert carried.encode(text) == original.encode(text)
    assert carried.encode(text)[0] == original.bos_token_id


@pytest.mark.parametrize(
    ("variant", "engine", "says"),
    [
        (
            "meditron-7b-awq",
            "hf",
            "AWQ 4-bit g128: the hf engine has no AWQ 4-bit g128 kernel on cpu",
        ),
        ("meditron-7b-gptq", "hf", "GPTQ 4-bit g128: the hf engine has no GPTQ 4-bit g128 kernel"),
        ("meditron-7b-awq", "vllm", "the vllm engine has no AWQ 4-bit g128 kernel on cpu"),
        (
            "meditron-7b-gguf-q4km",
            "vllm",
            "the vllm engine has no GGUF Q4_K_M (4-bit) kernel on cpu",
        ),
    ],
)
def test_unrunnable_variants_are_refused_naming_what_runs_them(
    eval_workspace, db_url, tmp_path, variant, engine, says
):
    result = invoke(
        eval_workspace, db_url, "eval", "-m", variant, "--engine", engine, "-t", "pubmedqa"
    )
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert says in message
    if variant == "meditron-7b-gguf-q4km":
        assert "run it with --engine hf on cpu or --engine hf on cuda" in message
    else:
        assert "run it with --engine vllm on cuda" in message
    assert not (tmp_path / "results.db").exists()  # refused before the store opened


def test_a_gguf_variant_without_a_file_is_refused(eval_workspace, db_url, gguf_copies):
    family = {
        "name": "tiny-folder",
        "display_name": "Tiny, GGUF folder",
        "developer": "medarena tests",
        "license": "apache-2.0",
        "variants": [
            {
                "name": "tiny-folder-q8",
                "params_b": 0.000213,
                "source": {"kind": "local", "path": str(gguf_copies)},
                "context_length": 2048,
                "quantization": {"method": "gguf", "bits": 8, "scheme": "Q8_0"},
            }
        ],
    }
    (eval_workspace / "models" / "tiny-folder.yaml").write_text(json.dumps(family))
    result = invoke(eval_workspace, db_url, "eval", "-m", "tiny-folder-q8", "-t", "pubmedqa")
    assert result.exit_code == 2, result.output
    assert "point its source path at the .gguf file (3 .gguf files in" in result.output


def test_the_quantization_is_in_the_run_key() -> None:
    from medarena.evaluate import identity
    from medarena.evaluate.runner import EvalOptions, plan_run
    from medarena.evaluate.spec import load_benchmarks
    from medarena.registry import load_registry
    from tests.conftest import REPO

    registry, task = load_registry(REPO), load_benchmarks(REPO)["pubmedqa"]
    options = EvalOptions(limit=2)

    def quantized(method: str, bits: int, group: int | None, scheme: str | None) -> str:
        chosen = {"method": method, "bits": bits, "group_size": group, "scheme": scheme}
        return identity.settings_hash(task, options, chosen)

    hashes = {
        identity.settings_hash(task, options),
        quantized("gguf", 8, None, "Q8_0"),
        quantized("gguf", 4, None, "Q4_0"),
        quantized("gptq", 4, 128, None),
        quantized("gptq", 4, 64, None),
        quantized("gptq", 8, 128, None),
        quantized("awq", 4, 128, None),
    }
    assert len(hashes) == 7
    awq = plan_run(registry, "meditron-7b-awq", task, options).spec.settings_hash
    assert awq == quantized("awq", 4, 128, None)
    # full precision hashes as before the quantization entered the key
    full = plan_run(registry, "tiny-medical-base", task, options).spec.settings_hash
    assert full == identity.settings_hash(task, options)


def test_models_show_tells_which_engines_run_a_variant_where(eval_workspace, db_url):
    shown = invoke(eval_workspace, db_url, "models", "show", "meditron-7b-gptq")
    assert shown.exit_code == 0, shown.output
    runs_on = json.loads(shown.stdout)["runs_on"]
    assert set(runs_on) >= {"hf", "vllm"}
    assert runs_on["vllm"] == {
        "cpu": "no: the vllm engine has no GPTQ 4-bit g128 kernel on cpu",
        "cuda": "yes (vLLM Marlin kernels)",
    }
    assert runs_on["hf"]["cpu"] == "no: the hf engine has no GPTQ 4-bit g128 kernel on cpu"
    full = json.loads(invoke(eval_workspace, db_url, "models", "show", "meditron-7b").stdout)
    assert full["runs_on"]["hf"] == {"cpu": "yes", "cuda": "yes"}
