"""LoRA instruction tuning for real on the tiny model: PEFT with DeepSpeed (ZeRO-2, ZeRO-3 over
two processes) and with a plain PyTorch loop; SIGKILL + resume; added special tokens; the
adapter and the merged model registered, reloaded, equal; bad input refused before training."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from medarena.registry import load_registry
from tests.conftest import REPO
from tests.helpers import invoke, sql_rows, training_killed_at_step

RECIPE = """
name: {name}
description: CI-sized LoRA tuning on the memorisable sample set.
citation: medarena tests
chat_template: {template}
data:
  - {{name: tiny, format: alpaca, data: {{path: {data}}}}}
lora: {{r: 16, alpha: 32, dropout: 0.0, target_modules: {targets}}}
sequence_length: 128
global_batch_sequences: {batch}
epochs: 100
max_steps: {steps}
optimizer: {{lr: 1.0e-2, betas: [0.9, 0.999], weight_decay: 0.0, grad_clip: 1.0}}
schedule: {{kind: constant}}
deepspeed:
  {{enabled: {deepspeed}, zero_stage: {stage}, bf16: false, activation_checkpointing: false}}
checkpoint_every: 4
"""
ALL = "[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head]"
MEMORISE = "samples/memorise/tiny_set.jsonl"

# a format whose two marker tokens the tiny tokenizer lacks: they must be added, the embeddings
# resized, and the new rows trained and saved with the adapter
TAGS_TEMPLATE = yaml.safe_dump(
    {
        "name": "qa-tags",
        "description": "Test format with two added marker tokens.",
        "source": "medarena tests",
        "roles": ["user", "assistant"],
        "generation_role": "assistant",
        "added_special_tokens": ["<|q|>", "<|a|>"],
        "template": "{% for m in messages %}{% if m['role'] == 'user' %}"
        "{{ '<|q|>' + m['content'] + '\\n' }}{% else %}"
        "{{ '<|a|>' + m['content'] + eos_token + '\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|a|>' }}{% endif %}",
    }
)


def recipe(name: str, **settings: object) -> str:
    defaults = {"steps": 12, "stage": 2, "deepspeed": "true", "template": "chatml"}
    defaults |= {"targets": ALL, "data": MEMORISE, "batch": 16}
    return RECIPE.format(name=name, **(defaults | settings))


@pytest.fixture
def tune_workspace(eval_workspace: Path) -> Path:
    shutil.copytree(REPO / "instruct", eval_workspace / "instruct")
    (eval_workspace / "models/chat_templates/qa-tags.yaml").write_text(TAGS_TEMPLATE)
    folder = eval_workspace / "instruct"
    (folder / "ci-ds.yaml").write_text(recipe("ci-ds", steps=14))
    (folder / "ci-plain.yaml").write_text(recipe("ci-plain", steps=14, deepspeed="false"))
    (folder / "ci-z3-tags.yaml").write_text(
        recipe("ci-z3-tags", steps=3, stage=3, template="qa-tags", batch=4)
    )
    return eval_workspace


def tune(workspace, db_url, recipe_name, output, *extra):
    args = ["train", "instruct", "-r", recipe_name, "-m", "tiny-medical-base", "--output", output]
    return invoke(workspace, db_url, *args, *extra)


def losses(db_url: str, output: str) -> list[float]:
    rows = sql_rows(
        db_url,
        "SELECT s.loss FROM training_steps s JOIN training_runs r ON r.id = s.training_run_id "
        "JOIN model_variants v ON v.id = r.output_variant_id WHERE v.name = :name ORDER BY s.step",
        name=output,
    )
    return [loss for (loss,) in rows]


def logits_agree(workspace: Path, merged: str, adapter: str, prompt: str) -> float:
    """Largest |difference| between the merged model's and adapter model's logits."""
    from transformers import AutoModelForCausalLM

    from medarena.adapters import load_adapted

    registry = load_registry(workspace)
    entry = registry.variant(adapter).variant
    base = registry.weights_location(registry.variant(entry.source.base).variant)
    with_adapter, tokenizer = load_adapted(base, registry.weights_location(entry))
    standalone = AutoModelForCausalLM.from_pretrained(
        registry.weights_location(registry.variant(merged).variant)
    )
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        one, two = with_adapter.eval()(ids).logits, standalone.eval()(ids).logits
    return float((one - two).abs().max())


def test_lora_with_deepspeed_memorises_resumes_and_registers_adapter_and_merged_model(
    tune_workspace, db_url, capfd, tmp_path
):
    result = tune(tune_workspace, db_url, "ci-ds", "mem-ds")
    printed = capfd.readouterr().out
    assert result.exit_code == 0, result.output + printed[-3000:]
    assert "engine: DeepSpeed ZeRO-2, data-parallel size 1, 14 steps" in printed
    curve = losses(db_url, "mem-ds")
    assert len(curve) == 14
    assert curve[-1] <= 0.5 * curve[0], curve  # the memorisable set: loss at least halves
    # DeepSpeed checkpoints of a LoRA run hold the trainable weights only
    killed_run_resumes_to_the_same_losses(tune_workspace, db_url, "ci-ds", tmp_path, curve)

    registry = load_registry(tune_workspace)
    merged, adapter = registry.variant("mem-ds").variant, registry.variant("mem-ds-adapter").variant
    assert merged.parent == adapter.parent == "tiny-medical-base"
    assert merged.chat_template == adapter.chat_template == "chatml"
    assert merged.instruction_tuned and adapter.source.kind == "adapter"
    assert adapter.source.base == "tiny-medical-base"
    assert sql_rows(
        db_url,
        "SELECT v.name, r.id, r.kind, r.status FROM model_variants v "
        "JOIN training_runs r ON r.id = v.produced_by_run_id ORDER BY v.name",
    ) == [
        ("mem-ds", 1, "instruct", "completed"),
        ("mem-ds-adapter", 1, "instruct", "completed"),
        ("resumed", 2, "instruct", "completed"),
        ("resumed-adapter", 2, "instruct", "completed"),
    ]

    prompt = "<|im_start|>user\nName the first-line drug for the condition.<|im_end|>\n"
    assert logits_agree(tune_workspace, "mem-ds", "mem-ds-adapter", prompt) < 1e-4

    # both evaluate with the run's chat template; the hf engine applies the adapter itself
    for variant in ("mem-ds", "mem-ds-adapter"):
        scored = invoke(
            tune_workspace, db_url, "eval", "-m", variant, "-t", "pubmedqa", "--limit", "4"
        )
        assert scored.exit_code == 0, scored.output
    rows = sql_rows(
        db_url,
        "SELECT v.name, r.config FROM eval_runs r JOIN model_variants v ON v.id = r.variant_id "
        "ORDER BY v.name",
    )
    assert [(name, json.loads(config)["chat_template"]) for name, config in rows] == [
        ("mem-ds", "chatml"),
        ("mem-ds-adapter", "chatml"),
    ]
    per_item = sql_rows(
        db_url,
        "SELECT p.item_id, v.name, p.logprobs FROM predictions p JOIN eval_runs r "
        "ON r.id = p.eval_run_id JOIN model_variants v ON v.id = r.variant_id ORDER BY p.item_id",
    )
    scores: dict[str, list] = {}
    for item, _, logprobs in per_item:
        scores.setdefault(item, []).append(json.loads(logprobs)["loglik"])
    assert len(scores) == 4
    for merged_ll, adapter_ll in scores.values():
        assert merged_ll == pytest.approx(adapter_ll, abs=1e-4)


def killed_run_resumes_to_the_same_losses(workspace, db_url, recipe_name, folder, reference):
    """Kill a run of `recipe_name` after step 7 (its step-4 checkpoint is the newest), run the
    same command again, and check the losses equal the uninterrupted run's (`reference`)."""
    # killed after step 7: after the checkpoint of step 4, before the one of step 8
    with training_killed_at_step("medarena.instruct.train", 7, folder):
        killed = tune(workspace, db_url, recipe_name, "resumed")
    assert killed.exit_code == 1 and "run the same command again" in killed.stderr
    run_dir = workspace / ".medarena/runs/resumed"
    assert (run_dir / "checkpoints/latest").read_text().strip() == "step0000004"
    assert not (workspace / "models/resumed.yaml").exists()
    status = "SELECT status FROM training_runs ORDER BY id DESC LIMIT 1"
    assert sql_rows(db_url, status) == [("interrupted",)]

    resumed = tune(workspace, db_url, recipe_name, "resumed")
    assert resumed.exit_code == 0, resumed.output
    assert sql_rows(db_url, status) == [("completed",)]
    after = losses(db_url, "resumed")
    assert len(after) == 14  # steps 5-7 recorded once
    assert after == pytest.approx(reference, abs=1e-5)  # same data order, optimizer, RNG


def test_plain_loop_memorises_and_a_killed_run_resumes_to_the_same_losses(
    tune_workspace, db_url, tmp_path
):
    whole = tune(tune_workspace, db_url, "ci-plain", "whole")
    assert whole.exit_code == 0, whole.output
    uninterrupted = losses(db_url, "whole")
    assert uninterrupted[-1] <= 0.5 * uninterrupted[0], uninterrupted
    killed_run_resumes_to_the_same_losses(
        tune_workspace, db_url, "ci-plain", tmp_path, uninterrupted
    )
    assert sql_rows(db_url, "SELECT count(*) FROM training_runs") == [(2,)]


def test_zero3_over_two_processes_trains_added_tokens_and_saves_them_with_the_adapter(
    tune_workspace, db_url, capfd
):
    result = tune(
        tune_workspace, db_url, "ci-z3-tags", "tags", "--gpus", "2", "--launcher", "torchrun"
    )
    printed = capfd.readouterr().out
    assert result.exit_code == 0, result.output + printed[-3000:]
    assert "engine: DeepSpeed ZeRO-3, data-parallel size 2, 3 steps" in printed
    assert "added tokens ['<|q|>', '<|a|>']" in result.stdout

    from safetensors.torch import load_file
    from transformers import AutoConfig

    adapter_dir = tune_workspace / ".medarena/runs/tags/adapter"
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    resized = [name for name, tensor in weights.items() if tensor.shape[0] == 1026]
    assert any("embed_tokens" in name for name in resized), sorted(weights)
    assert any("lm_head" in name for name in resized), sorted(weights)
    merged = tune_workspace / ".medarena/runs/tags/merged"
    assert AutoConfig.from_pretrained(merged).vocab_size == 1026
    assert logits_agree(tune_workspace, "tags", "tags-adapter", "<|q|>Asthma\n<|a|>") < 1e-4


def test_bad_input_is_refused_before_training_and_nothing_is_registered(tune_workspace, db_url):
    folder = tune_workspace / "instruct"
    (folder / "unknown-target.yaml").write_text(
        recipe("unknown-target", targets="[q_proj, query_key_value]")
    )
    (folder / "system-role.yaml").write_text(
        recipe("system-role", template="qa-tags", data="samples/chat/sharegpt.jsonl").replace(
            "format: alpaca", "format: chat"
        )
    )
    (folder / "empty.yaml").write_text(recipe("empty", data="empty.jsonl"))
    (folder / "empty.jsonl").write_text("")
    before = sorted(p.name for p in (tune_workspace / "models").iterdir())

    unknown = tune(tune_workspace, db_url, "unknown-target", "x1")
    assert unknown.exit_code == 2
    assert "['query_key_value'] match no linear layer" in unknown.stderr
    assert "'down_proj', 'gate_proj', 'k_proj', 'lm_head', 'o_proj', 'q_proj'" in unknown.stderr

    role = tune(tune_workspace, db_url, "system-role", "x2")
    assert role.exit_code == 2
    assert "sharegpt.jsonl:1: a 'system' message" in role.stderr
    assert "['user', 'assistant']" in role.stderr

    empty = tune(tune_workspace, db_url, "empty", "x3")
    assert empty.exit_code == 2 and "empty.jsonl" in empty.stderr and "no items" in empty.stderr

    (folder / "rank-zero.yaml").write_text(recipe("rank-zero").replace("r: 16", "r: 0"))
    rank = tune(tune_workspace, db_url, "ci-ds", "x4")
    assert rank.exit_code == 2
    assert "instruct/rank-zero.yaml:8: lora.r" in rank.stderr and "greater than 0" in rank.stderr

    assert sorted(p.name for p in (tune_workspace / "models").iterdir()) == before
    runs = tune_workspace / ".medarena/runs"
    assert not runs.exists() or not any(runs.iterdir())
    assert not Path(db_url.removeprefix("sqlite:///")).exists()  # no training run recorded


def test_plan_on_gpus_and_cluster_launchers(tune_workspace, db_url):
    plan = tune(
        tune_workspace, db_url, "ci-ds", "p", "--hardware", "h100-80gb-sxm", "--gpus", "8", "--plan"
    )
    assert plan.exit_code == 0, plan.output
    assert "data: 16 examples" in plan.stdout and "trainable_params" in plan.stdout
    assert not (tune_workspace / ".medarena/runs/p").exists()  # a plan keeps nothing
    qlora = tune_workspace / "instruct/ci-qlora.yaml"
    qlora.write_text(recipe("ci-qlora") + "qlora: {quant_type: nf4}\n")
    refused = tune(tune_workspace, db_url, "ci-qlora", "q", "--plan")
    assert refused.exit_code == 2 and "QLoRA needs a CUDA GPU" in refused.stderr

    cluster = tune(tune_workspace, db_url, "ci-ds", "multi", "--gpus", "2", "--nodes", "2")
    assert cluster.exit_code == 0, cluster.output
    run_dir = tune_workspace / ".medarena/runs/multi"
    launch, sbatch = (run_dir / "launch.sh").read_text(), (run_dir / "slurm.sbatch").read_text()
    assert f"--module medarena.instruct.train {run_dir}" in launch
    assert f"-m medarena.instruct.train {run_dir}" in sbatch
    run = json.loads((run_dir / "run.json").read_text())
    assert run["plan"]["world_size"] == 4 and run["lora"]["r"] == 16
    assert (run_dir / "data/examples.npz").is_file() and (run_dir / "tokenizer").is_dir()


def test_a_plan_for_a_hub_model_stays_offline_and_says_what_it_assumed(tune_workspace, db_url):
    """meditron-7b is not on disk and HF_HUB_OFFLINE is set: the plan sizes LoRA on the
    published Llama-2-7B shape and counts examples without the tokenizer, and says both."""
    plan = invoke(
        tune_workspace,
        db_url,
        *("train", "instruct", "-r", "meditron-medqa-sft", "-m", "meditron-7b"),
        *("--hardware", "h100-80gb-sxm", "--gpus", "8", "--plan"),
    )
    assert plan.exit_code == 0, plan.output
    assert "no config of epfl-llm/meditron-7b on disk: LoRA targets sized on " in plan.stdout
    assert "meta-llama/Llama-2-7b-hf config.json" in plan.stdout
    assert "data not encoded: no tokenizer of epfl-llm/meditron-7b on disk" in plan.stdout
    # r x (in + out) per adapted layer: 4 attention projections of 4096 x 4096 and 3 MLP
    # projections of 4096 x 11008, 32 layers, r = 16 (the recipe's)
    trainable = 16 * 32 * (4 * (4096 + 4096) + 3 * (4096 + 11008))
    assert f"{trainable:,}" in plan.stdout
    assert not (tune_workspace / ".medarena/runs").exists()  # a plan keeps nothing


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs CUDA (bitsandbytes)")
def test_qlora_on_a_gpu(tune_workspace, db_url):
    pytest.importorskip("bitsandbytes")
    qlora = recipe("ci-qlora", deepspeed="false").replace("bf16: false", "bf16: true")
    (tune_workspace / "instruct/ci-qlora.yaml").write_text(qlora + "qlora: {quant_type: nf4}\n")
    result = tune(tune_workspace, db_url, "ci-qlora", "q4", "--hardware", "h100-80gb-sxm")
    assert result.exit_code == 0, result.output
    curve = losses(db_url, "q4")
    assert curve[-1] <= 0.5 * curve[0], curve
