"""A real OpenAI-compatible server for the openai engine's tests, and a fault proxy before it.

`served_model` starts `vllm serve` (vLLM's CPU build, its OpenAI API server module) on
127.0.0.1 serving the tiny model; `FaultProxy` listens on another loopback port, forwards to it
and, on the requests its schedule names, answers 429 with Retry-After, 500, answers slowly, or
drops the connection. It counts every request by the item header the engine sends and records
which items got a successful answer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import ClientSession, web

KEY = "test-key-7f3a"  # the server's key: only these tests know it
ITEM_HEADER = "X-Medarena-Item"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def vllm_env(scratch: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(scratch / "vllm-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(scratch / "inductor"),
        "TMPDIR": str(scratch),
    }


@contextmanager
def served_model(
    model_dir: Path, name: str, scratch: Path, chat_template: str | None = None
) -> Iterator[str]:
    """`vllm serve` of `model_dir` as model `name`, float32, eager, with `chat_template` for
    its chat endpoint (the tiny base model's tokenizer has none); yields its base URL."""
    port = free_port()
    template = []
    if chat_template is not None:
        (scratch / "chat_template.jinja").write_text(chat_template)
        template = ["--chat-template", str(scratch / "chat_template.jinja")]
    log = (scratch / "vllm-serve.log").open("w")
    # the module, not the `vllm` script: the CPU build's distribution is named vllm-cpu and
    # the script's version lookup fails on it
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            *("--model", str(model_dir), "--served-model-name", name),
            *("--host", "127.0.0.1", "--port", str(port), "--api-key", KEY),
            *("--dtype", "float32", "--max-model-len", "2048", "--enforce-eager"),
            *("--seed", "0"),
            *template,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=vllm_env(scratch),
        start_new_session=True,  # its engine processes go with it
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(base, process, scratch / "vllm-serve.log")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _wait_ready(base: str, process: subprocess.Popen, log: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{base}/models", headers={"Authorization": f"Bearer {KEY}"})
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vllm serve exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"vllm serve not ready in {timeout} s: {log.read_text()[-3000:]}")


class FaultProxy:
    """A loopback HTTP proxy to `upstream`. `faults` maps the n-th item request (1-based, in
    arrival order) to "429", "500", "slow" or "drop"; `delay` slows every item request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removesuffix("/v1")
        self.faults: dict[int, str] = {}
        self.delay = 0.0
        self.requests: Counter[str] = Counter()  # item -> requests that reached the proxy
        self.answered: Counter[str] = Counter()  # item -> successful answers
        self.injected: Counter[str] = Counter()  # fault -> times injected
        self.total = 0  # every request, the model list included
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/v1"
        self._count = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def reset(self) -> None:
        self.faults, self.delay, self._count, self.total = {}, 0.0, 0, 0
        self.requests.clear()
        self.answered.clear()
        self.injected.clear()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.total += 1
        item = request.headers.get(ITEM_HEADER)
        if item is not None:
            self.requests[item] += 1
            self._count += 1
            fault = self.faults.get(self._count)
            if fault:
                self.injected[fault] += 1
            if fault == "429":
                return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
            if fault == "500":
                return web.Response(status=500, text="upstream broke")
            if fault == "drop":
                assert request.transport is not None
                request.transport.close()  # the connection dies without an answer
                return web.Response(status=500)
            if fault == "slow" or self.delay:
                await asyncio.sleep(self.delay or 1.5)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with (
            ClientSession() as session,
            session.request(
                request.method, self.upstream + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            payload = await answer.read()
            if item is not None and answer.status == 200:
                self.answered[item] += 1
            return web.Response(
                status=answer.status,
                body=payload,
                content_type=answer.content_type,
            )
