"""Sending an API engine's requests: at most `concurrency` in flight, each retried on the
failures a busy or restarting server gives (429, 5xx, timeouts, dropped connections) with
exponential backoff and jitter, waiting at least what `Retry-After` asks. A request that still
fails, or fails in a way retrying cannot mend (a bad request, a refused key), stops the whole
batch with an EngineError naming its item.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from typing import TypeVar

import openai

from medarena.errors import EngineError

T = TypeVar("T")

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries per request, the first included
    base_delay: float = 0.5  # seconds before the first retry, doubled each time
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before try `attempt + 1`: half the exponential step plus a random
        half (spread so that clients refused together do not return together), and never
        less than the server's Retry-After."""
        step = min(self.max_delay, self.base_delay * 2**attempt)
        backoff = step / 2 + random.uniform(0, step / 2)
        return max(backoff, retry_after or 0.0)


def retry_after(exc: BaseException) -> float | None:
    """The seconds a `Retry-After` (or `retry-after-ms`) header of the failed response asks."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:  # an HTTP date
            return max(parsedate_to_datetime(value).timestamp() - time(), 0.0)
        except (TypeError, ValueError):
            return None


def describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    kind = type(exc).__name__
    return f"{kind} (HTTP {status})" if status else kind


async def with_retries(
    call: Callable[[], Awaitable[T]], what: str, policy: RetryPolicy, where: str
) -> T:
    """`call()`, retried per `policy`; EngineError naming `what` (the item) when it cannot
    succeed."""
    for attempt in range(policy.attempts):
        try:
            return await call()
        except RETRYABLE as exc:
            if attempt + 1 == policy.attempts:
                raise EngineError(
                    f"{what}: the request to {where} failed {policy.attempts} times; "
                    f"last: {describe(exc)}"
                ) from exc
            await asyncio.sleep(policy.delay(attempt, retry_after(exc)))
        except openai.APIStatusError as exc:  # 400, 401, 404 ...: retrying cannot mend it
            raise EngineError(
                f"{what}: {where} refused the request: {describe(exc)}: {exc.message}"
            ) from exc
    raise AssertionError("unreachable")


async def gather_limited(calls: Sequence[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    """Every call's result in order, at most `concurrency` running at once; the first failure
    cancels the rest and is raised."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    tasks = [asyncio.ensure_future(gated(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
