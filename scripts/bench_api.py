"""The openai engine's throughput against a plain concurrent `openai` client loop on the same
server (goal: at least 0.9x the plain loop's items/s), for docs/PERFORMANCE.md.

Starts `vllm serve` (the CPU build, as the tests do) on 127.0.0.1 with the tiny model, then
times, alternating, rounds of
- generation: `--items` prompts of the bundled MIMIC-CXR findings, `--new-tokens` greedy tokens;
  plain = AsyncOpenAI + a semaphore of `--concurrency`, one completions request per item;
- log-likelihood: the bundled MedQA items' four choices; plain = one completions request per
  item with its choices batched and `prompt_logprobs`, as the engine sends them;
each through `OpenAIEngine` with the same concurrency. Median of `--rounds` after a warm-up.

    VLLM_CPU_KVCACHE_SPACE=1 .venv/bin/python scripts/bench_api.py --items 64 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' server helper

from tests.api_server import KEY, served_model  # noqa: E402


def plain_generate(base: str, prompts: list[list[int]], new_tokens: int, limit: int) -> None:
    import openai

    async def run() -> None:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=base, max_retries=0)
        gate = asyncio.Semaphore(limit)

        async def one(prompt: list[int]) -> str:
            async with gate:
                answer = await client.completions.create(
                    model="tiny", prompt=prompt, max_tokens=new_tokens, temperature=0.0, seed=0
                )
                return answer.choices[0].text

        await asyncio.gather(*(one(prompt) for prompt in prompts))
        await client.close()

    asyncio.run(run())


def plain_loglik(base: str, groups: list[list[list[int]]], limit: int) -> None:
    import openai

    async def run() -> None:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=base, max_retries=0)
        gate = asyncio.Semaphore(limit)

        async def one(group: list[list[int]]) -> object:
            async with gate:
                return await client.completions.create(
                    model="tiny",
                    prompt=group,
                    max_tokens=1,
                    temperature=0.0,
                    extra_body={"prompt_logprobs": 0},
                )

        await asyncio.gather(*(one(group) for group in groups))
        await client.close()

    asyncio.run(run())


def rounds(jobs: dict[str, Callable[[], object]], count: int) -> dict[str, list[float]]:
    """Seconds per job, alternating the jobs each round, after one warm-up each."""
    for job in jobs.values():
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(count):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from medarena.evaluate.engines.api import OpenAIEngine
    from medarena.evaluate.engines.base import LoglikRequest, Sampling
    from medarena.evaluate.prompts import PromptSettings, build_prompt
    from medarena.evaluate.runner import load_task_data
    from medarena.evaluate.spec import load_benchmarks
    from medarena.evaluate.tokens import encode_pair
    from medarena.schemas import ApiSource
    from medarena.tiny import build_tiny

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        build_tiny(scratch / "tiny", seed=0)
        tasks = load_benchmarks(REPO)
        reports = load_task_data(tasks["mimic_cxr_summarization"], REPO).items
        questions = load_task_data(tasks["medqa_4options"], REPO).items
        with served_model(scratch / "tiny", "tiny", scratch) as base:
            os.environ["BENCH_API_KEY"] = KEY
            source = ApiSource(
                kind="api",
                base_url=base,
                model="tiny",
                endpoint="completions",
                api_key_env="BENCH_API_KEY",
                prompt_logprobs=True,
                serves="tiny-medical-base",
            )
            engine = OpenAIEngine(
                base,
                source=source,
                max_length=2048,
                tokenizer=str(scratch / "tiny"),
                concurrency=args.concurrency,
            )
            tokenizer = engine.tokenizer
            summarize = tasks["mimic_cxr_summarization"]
            generate = PromptSettings("generate")
            prompts = [
                tokenizer.encode(
                    build_prompt(summarize, reports[i % len(reports)], [], generate).context
                )
                for i in range(args.items)
            ]
            medqa, loglik = tasks["medqa_4options"], PromptSettings("loglik")
            requests: list[LoglikRequest] = []
            for index in range(args.items):
                built = build_prompt(medqa, questions[index % len(questions)], [], loglik)
                for choice in built.item.choices:
                    context, continuation = encode_pair(
                        tokenizer, built.context, built.target_delimiter + choice
                    )
                    requests.append(LoglikRequest(tuple(context), tuple(continuation), str(index)))
            groups = [
                [list(r.context + r.continuation) for r in requests if r.item == str(index)]
                for index in range(args.items)
            ]
            sampling = Sampling(max_new_tokens=args.new_tokens)
            limit = args.concurrency
            times = rounds(
                {
                    "plain openai loop, generate": lambda: plain_generate(
                        base, prompts, args.new_tokens, limit
                    ),
                    "openai engine, generate": lambda: engine.generate(
                        [tuple(p) for p in prompts], sampling
                    ),
                    "plain openai loop, loglik": lambda: plain_loglik(base, groups, limit),
                    "openai engine, loglik": lambda: engine.loglikelihood(requests),
                },
                args.rounds,
            )
            engine.close()
    print(
        f"{date.today()} {platform.machine()} {platform.processor() or platform.platform()}; "
        f"{args.items} items, concurrency {args.concurrency}, {args.new_tokens} new tokens"
    )
    print("| what | min | median | max | unit | runs |")
    print("| --- | --- | --- | --- | --- | --- |")
    medians = {}
    for name, seconds in times.items():
        rates = sorted(args.items / s for s in seconds)
        medians[name] = statistics.median(rates)
        print(
            f"| {name} | {rates[0]:.1f} | {medians[name]:.1f} | {rates[-1]:.1f} | items/s "
            f"| {len(rates)} |"
        )
    for kind in ("generate", "loglik"):
        ratio = medians[f"openai engine, {kind}"] / medians[f"plain openai loop, {kind}"]
        print(f"{kind}: engine / plain = {ratio:.2f}x (goal >= 0.9x)")


if __name__ == "__main__":
    main()
