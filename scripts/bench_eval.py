"""Evaluation-engine figures for docs/PERFORMANCE.md, each measured side by side in one run.

1. Log-likelihood multiple choice: questions of `--prompt-tokens` random tokens with four
   one-token answers. Plain HF (one forward per question, full logits, log-softmax over the whole
   vocabulary at every position: the baseline in docs/PERFORMANCE.md, Baselines) against the hf
   engine (one forward per distinct input, LM head only where a choice is scored).
2. Generation: `--gen-batch` prompts of `--gen-prompt` tokens, `--new-tokens` greedy tokens.
   Plain HF `generate` with its default cache against the hf engine (static cache on GPU) and,
   with `--vllm`, the vllm engine.

Shapes: `tiny` (the embedded model; CPU regression reference) or `1.1b` (TinyLlama's shape,
random bf16 weights; GPU). MFU counts 2 x parameters x tokens per second (attention excluded)
against the bf16 dense peak of models/hardware/h100-80gb-sxm.yaml.

    .venv/bin/python scripts/bench_eval.py --shape tiny
    python scripts/bench_eval.py --shape 1.1b --questions 2048 --batch 128 --vllm   # on a GPU
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
from datetime import date
from pathlib import Path

import torch
from benchlib import H100_BF16_FLOPS, LLAMA_1_1B, timed


def build_model(shape: str, folder: Path) -> Path:
    """A model folder both engines can load: the tiny build, or the 1.1B shape with random
    weights and the tiny tokenizer (token ids are fed directly; decoding skips unknown ids)."""
    from medarena.tiny import build_tiny

    tiny = folder / "tiny"
    build_tiny(tiny, seed=0)
    if shape == "tiny":
        return tiny
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    big = folder / "llama-1.1b"
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(**LLAMA_1_1B, max_position_embeddings=2048, torch_dtype="bfloat16")
    )
    model.to(torch.bfloat16).save_pretrained(big)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(big)
    return big


def row(name: str, rates: list[float], unit: str, mfu_per_unit: float | None = None) -> str:
    median = statistics.median(rates)
    mfu = f"{100 * median * mfu_per_unit:.1f}%" if mfu_per_unit else "-"
    return (
        f"| {name} | {min(rates):,.1f} | {median:,.1f} | {max(rates):,.1f} | {unit} | {mfu} |"
        f" {len(rates)} |"
    )


def bench_loglik(engines, args, vocab: int, n_params: int) -> list[str]:
    from medarena.evaluate.engines import LoglikRequest

    rng = random.Random(0)
    questions = [
        tuple(rng.randrange(10, vocab) for _ in range(args.prompt_tokens))
        for _ in range(args.questions)
    ]
    answers = [rng.randrange(10, vocab) for _ in range(4)]
    requests = [LoglikRequest(q, (a,)) for q in questions for a in answers]
    model, device = engines["hf"].model, engines["hf"].device
    flops_per_question = 2 * n_params * args.prompt_tokens
    peak = H100_BF16_FLOPS if device.type == "cuda" else None

    @torch.inference_mode()
    def plain() -> int:
        for start in range(0, len(questions), args.batch):
            ids = torch.tensor(questions[start : start + args.batch], device=device)
            logprobs = torch.log_softmax(model(ids).logits.float(), dim=-1)
            logprobs[:, -1, answers].cpu()
        return len(questions)

    per = flops_per_question / peak if peak else None
    rows = [row("plain HF forward, full logits", timed(plain, args.repeat), "questions/s", per)]
    for name, engine in engines.items():

        def ours(engine=engine) -> int:
            engine.loglikelihood(requests)
            return len(questions)

        rows.append(
            row(f"{name} engine loglikelihood", timed(ours, args.repeat), "questions/s", per)
        )
    return rows


def bench_generation(engines, args, vocab: int) -> list[str]:
    from medarena.evaluate.engines import Sampling

    rng = random.Random(1)
    prompts = [
        tuple(rng.randrange(10, vocab) for _ in range(args.gen_prompt))
        for _ in range(args.gen_batch)
    ]
    hf = engines["hf"]
    sampling = Sampling(max_new_tokens=args.new_tokens)

    @torch.inference_mode()
    def plain() -> int:
        ids = torch.tensor(prompts, device=hf.device)
        hf.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
            do_sample=False,
            pad_token_id=hf.pad_id,
        )
        return len(prompts) * args.new_tokens

    rows = [row("plain HF generate, default cache", timed(plain, args.repeat), "new tokens/s")]
    for name, engine in engines.items():
        batch = args.gen_batch

        def ours(engine=engine) -> int:
            return sum(g.new_tokens for g in engine.generate(prompts, sampling))

        old = getattr(engine, "batch_size", None)
        if old is not None:
            engine.batch_size = batch
        rows.append(row(f"{name} engine generate", timed(ours, args.repeat), "new tokens/s"))
        if old is not None:
            engine.batch_size = old
    return rows


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["tiny", "1.1b"], default="tiny")
    parser.add_argument("--questions", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=384)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--gen-batch", type=int, default=64)
    parser.add_argument("--gen-prompt", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--static-cache", action="store_true", help="hf engine static cache")
    parser.add_argument("--vllm", action="store_true", help="also time the vllm engine")
    args = parser.parse_args()

    from medarena.evaluate.engines.hf import HFEngine

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(args.shape, Path(tmp))
        dtype = "bfloat16" if args.shape == "1.1b" else "float32"
        hf = HFEngine(
            str(folder), dtype=dtype, batch_size=args.batch, static_cache=args.static_cache
        )
        n_params = sum(p.numel() for p in hf.model.parameters())
        vocab = hf.model.config.vocab_size
        engines = {"hf": hf}
        if args.vllm:
            from medarena.evaluate.engines.vllm import VLLMEngine

            engines["vllm"] = VLLMEngine(str(folder), dtype=dtype, max_length=2048)
        lines = bench_loglik(engines, args, vocab, n_params)
        lines += bench_generation(engines, args, vocab)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()
    print(
        f"{date.today()} {args.shape} ({n_params / 1e6:,.2f}M params) on {device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; {vars(args)}"
    )
    print("| what | min | median | max | unit | MFU | runs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(lines))


if __name__ == "__main__":  # vLLM spawns its engine process
    main()
