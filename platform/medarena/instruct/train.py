"""The LoRA training process: `python -m medarena.instruct.train RUN_DIR`, one per rank.

Launched like pretraining's process (directly, torchrun, the deepspeed launcher, SLURM). RUN_DIR
holds run.json (plan, LoRA settings, optimizer, schedule, base location, store), the prepared
tokenizer and the encoded examples. The base is frozen (optionally 4-bit, QLoRA); the adapters,
and the embedding / output layers when the chat template added tokens, train. Checkpoints hold
only the trainable weights plus data position and RNG states; the final adapter goes to
RUN_DIR/adapter with the tokenizer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medarena.instruct.encode import IGNORE
from medarena.instruct.prepare import TOKENIZER, Examples
from medarena.training.contract import RunContract
from medarena.training.loop import StepEngine, init_distributed, read_run, train_steps

ADAPTER = "adapter"


def build_model(run: RunContract, tokenizer: Any) -> Any:
    """Base model (bf16 / fp32, or 4-bit for QLoRA) with LoRA adapters attached."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    plan, lora = run.plan, run.lora
    dtype = torch.bfloat16 if plan.bf16 else torch.float32
    extra: dict[str, Any] = {}
    if run.qlora:
        from transformers import BitsAndBytesConfig

        extra["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=run.qlora.quant_type,
            bnb_4bit_use_double_quant=run.qlora.double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
        extra["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(run.base_location, dtype=dtype, **extra)
    if len(tokenizer) != model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if run.qlora:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=plan.activation_checkpointing
        )
    elif plan.activation_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks need a grad
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        # new token rows must be learned, in the input and the output layer
        modules_to_save=["embed_tokens", "lm_head"] if run.added_tokens else None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config, autocast_adapter_dtype=lora.adapter_dtype == "float32")


def collate(examples: Examples, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded micro-batch; padding is masked out of attention and loss."""
    pairs = [examples.example(i) for i in indices]
    width = max(len(ids) for ids, _ in pairs)
    ids = np.full((len(pairs), width), pad_id, dtype=np.int64)
    labels = np.full((len(pairs), width), IGNORE, dtype=np.int64)
    mask = np.zeros((len(pairs), width), dtype=np.int64)
    for row, (tokens, targets) in enumerate(pairs):
        ids[row, : len(tokens)], labels[row, : len(tokens)] = tokens, targets
        mask[row, : len(tokens)] = 1
    return {
        "input_ids": torch.from_numpy(ids),
        "labels": torch.from_numpy(labels),
        "attention_mask": torch.from_numpy(mask),
    }


def main(run_dir: Path, run: RunContract) -> None:
    from transformers import AutoTokenizer

    plan = run.plan
    rank = init_distributed(plan)
    torch.manual_seed(run.seed)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / TOKENIZER)
    model = build_model(run, tokenizer)
    engine = StepEngine(model, plan, run.optimizer, run.schedule)
    if rank == 0:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(
            f"engine: {engine.describe()}, {plan.steps} steps, {trainable:,} trainable parameters",
            flush=True,
        )
    step, position = engine.resume(run_dir)
    examples = Examples(run_dir / "data")
    train_steps(
        engine,
        run,
        run_dir,
        examples.order(run.seed, position),
        lambda indices: collate(examples, indices, tokenizer.pad_token_id),
        start=(step, position),
        tokens_seen=examples.tokens_before(run.seed, position),
        # frozen weights: forward 2N plus the backward's activation gradients 2N per token
        flops_per_token=4 * run.params + 6 * run.trainable_params,
    )
    _save_adapter(model, tokenizer, run_dir, rank)
    torch.distributed.barrier()


def _save_adapter(model: Any, tokenizer: Any, run_dir: Path, rank: int) -> None:
    """Adapter weights (gathered from ZeRO-3 partitions) and the tokenizer, on rank 0."""
    import deepspeed

    trainable = [p for p in model.parameters() if p.requires_grad]
    with deepspeed.zero.GatheredParameters(trainable, modifier_rank=None):
        if rank == 0:
            model.save_pretrained(run_dir / ADAPTER, safe_serialization=True)
            tokenizer.save_pretrained(run_dir / ADAPTER)


if __name__ == "__main__":
    main(*read_run(sys.argv[1:], "python -m medarena.instruct.train"))
