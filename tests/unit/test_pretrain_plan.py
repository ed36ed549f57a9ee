"""The plan resolver's arithmetic: ZeRO memory by stage, batch splitting, escalation to
offload, and impossible plans refused with a suggestion."""

import pytest

from medarena.errors import PlanError, Refused
from medarena.pretrain.recipe import load_recipes
from medarena.registry import load_registry
from medarena.training.plan import GIB, ModelShape, memory, resolve
from tests.conftest import REPO

SEVEN_B = ModelShape(params=6.74e9, hidden=4096, layers=32)


@pytest.fixture(scope="module")
def registry():
    return load_registry(REPO)


@pytest.fixture(scope="module")
def recipes():
    return load_recipes(REPO)


def test_zero_stages_shard_what_the_zero_paper_says():
    psi = SEVEN_B.params / GIB
    stage0 = memory(SEVEN_B, 0, 64, 1, 2048, True, False, False)
    assert (stage0.parameters, stage0.gradients, stage0.optimizer) == pytest.approx(
        (2 * psi, 2 * psi, 12 * psi)
    )
    stage1 = memory(SEVEN_B, 1, 64, 1, 2048, True, False, False)
    assert stage1.optimizer == pytest.approx(12 * psi / 64) and stage1.gradients == stage0.gradients
    stage2 = memory(SEVEN_B, 2, 64, 1, 2048, True, False, False)
    assert stage2.gradients == pytest.approx(2 * psi / 64)
    stage3 = memory(SEVEN_B, 3, 64, 1, 2048, True, False, False)
    assert stage3.parameters == pytest.approx(2 * psi / 64)
    offloaded = memory(SEVEN_B, 3, 64, 1, 2048, True, True, True)
    assert offloaded.optimizer == 0 and offloaded.parameters == 0


def test_activation_checkpointing_cuts_activation_memory():
    full = memory(SEVEN_B, 2, 8, 4, 2048, False, False, False).activations
    checkpointed = memory(SEVEN_B, 2, 8, 4, 2048, True, False, False).activations
    assert full == pytest.approx(32 * 34 * 2048 * 4096 * 4 / GIB)
    assert checkpointed < full / 10


def test_meditron_7b_on_eight_a100_nodes(registry, recipes):
    plan = resolve(
        recipes["gap-replay"],
        registry,
        registry.variant("llama-2-7b"),
        hardware=registry.hardware_profile("a100-80gb-sxm"),
        nodes=8,
    )
    assert (plan.world_size, plan.global_batch, plan.sequence_length) == (64, 1600, 2048)
    assert plan.micro_batch * plan.grad_accum * plan.world_size == 1600
    assert plan.zero_stage == 3 and not plan.offload_optimizer
    assert plan.memory_gib.total <= 80 * 1e9 / GIB * 0.9
    # the published training tokens (Table 1 of arXiv:2311.16079: 46.707B), one epoch
    assert plan.steps == -(-int(46.707e9) // (1600 * 2048))
    assert plan.gpu_hours is not None and plan.gpu_hours > 1000


def test_a_model_behind_an_api_has_nothing_to_train(registry, recipes):
    with pytest.raises(Refused, match=r"^gpt-4 is a model behind an API \(https://api.openai"):
        resolve(
            recipes["gap-replay"],
            registry,
            registry.variant("gpt-4"),
            hardware=registry.hardware_profile("a100-80gb-sxm"),
            nodes=1,
        )


def test_70b_on_one_node_needs_offload_and_gets_its_overrides(registry, recipes):
    plan = resolve(
        recipes["gap-replay"],
        registry,
        registry.variant("llama-2-70b"),
        hardware=registry.hardware_profile("h100-80gb-sxm"),
        nodes=1,
    )
    assert (plan.lr, plan.sequence_length, plan.global_batch) == (1.5e-4, 4096, 512)
    assert plan.zero_stage == 3 and plan.offload_optimizer
    assert any("optimizer offload" in note for note in plan.notes)


def test_impossible_plans_say_what_would_work(registry, recipes):
    with pytest.raises(PlanError, match="use a global batch of 1536"):
        resolve(
            recipes["gap-replay"],
            registry,
            registry.variant("llama-2-7b"),
            hardware=registry.hardware_profile("a100-80gb-sxm"),
            nodes=16,
        )
    with pytest.raises(PlanError, match="do not fit on 1 GPU"):
        resolve(
            recipes["gap-replay"],
            registry,
            registry.variant("llama-2-70b"),
            hardware=registry.hardware_profile("a100-80gb-sxm"),
            gpus=1,
        )
    with pytest.raises(PlanError, match="exceeds llama-2-7b's context of 4096"):
        resolve(
            recipes["gap-replay"].model_copy(update={"sequence_length": 8192}),
            registry,
            registry.variant("llama-2-7b"),
            hardware=None,
        )


def test_lora_plans_count_only_trainable_state_and_qlora_fits_70b_on_one_gpu(registry):
    from medarena.instruct.recipe import load_recipes as load_instruct_recipes

    sft = load_instruct_recipes(REPO)["meditron-medqa-sft"]
    h100 = registry.hardware_profile("h100-80gb-sxm")
    seventy = registry.variant("meditron-70b")
    lora = 0.2e9  # r=16 on every linear layer of a 70B Llama: about 0.2B trainable parameters
    tuned = resolve(sft, registry, seventy, hardware=h100, gpus=8, tokens=10**9, trainable=lora)
    # full training of 70B on 8 GPUs needs optimizer offload (above); LoRA only shards weights
    assert tuned.zero_stage == 3 and not tuned.offload_optimizer
    assert tuned.memory_gib.optimizer == pytest.approx(12 * lora / 8 / GIB)
    assert tuned.memory_gib.parameters == pytest.approx(2 * 68.98e9 / 8 / GIB)
    assert tuned.trainable_params == lora
    plain = sft.model_copy(
        update={"deepspeed": sft.deepspeed.model_copy(update={"enabled": False})}
    )
    qlora = resolve(
        plain,
        registry,
        seventy,
        hardware=h100,
        gpus=1,
        tokens=10**9,
        trainable=lora,
        weight_bytes=0.5,
    )
    assert (qlora.deepspeed, qlora.zero_stage, qlora.world_size) == (False, 0, 1)
    assert qlora.memory_gib.parameters == pytest.approx(0.5 * 68.98e9 / GIB)
    with pytest.raises(PlanError, match=r"plain PyTorch loop.*enable DeepSpeed"):
        resolve(plain, registry, seventy, hardware=h100, gpus=1, trainable=lora)
    with pytest.raises(PlanError, match="one process; enable DeepSpeed to train on 8"):
        resolve(plain, registry, seventy, hardware=h100, gpus=8, trainable=lora)


def test_the_data_stage_is_planned_from_the_measured_rates(tmp_path):
    from medarena.data.corpus import Source
    from medarena.data.estimate import PEAK_WORKER_MIB, TOKENS_PER_CORE_SECOND, plan_data

    (tmp_path / "notes.jsonl").write_bytes(b"x" * 4000)
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "a.txt").write_bytes(b"y" * 1000)
    local = [
        Source(name="n", kind="clinical_notes", data={"path": "notes.jsonl"}, ratio=1),
        Source(name="p", kind="papers", data={"path": "papers"}, ratio=1),
    ]
    plan = plan_data(local, 0, tmp_path, nodes=2, cores_per_node=8)
    assert plan.corpus_bytes == 5000 and plan.expected_tokens == 5000 / 4
    assert plan.core_hours == pytest.approx(1250 / TOKENS_PER_CORE_SECOND / 3600)
    assert plan.wall_hours == pytest.approx(plan.core_hours / 16) and plan.cores == 16
    assert plan.intermediate_disk_gib == pytest.approx((5000 + 3 * 2 * 1250) / 2**30)
    assert plan.peak_memory_mib_per_worker == PEAK_WORKER_MIB > 0
    hub = Source(name="h", kind="general", ratio=1,
                 data={"kind": "hub", "dataset": "x/y", "split": "train"})  # fmt: skip
    published = plan_data([*local, hub], 129e9, tmp_path, nodes=1, cores_per_node=2)
    assert published.corpus_bytes is None
    assert published.intermediate_disk_gib == pytest.approx((129e9 * 4 + 6 * 129e9) / 2**30)
    assert published.core_hours == pytest.approx(129e9 / TOKENS_PER_CORE_SECOND / 3600)
    unknown = plan_data([hub], 0, tmp_path, nodes=1, cores_per_node=2)
    assert unknown.expected_tokens is None and unknown.core_hours is None
    assert unknown.intermediate_disk_gib is None
