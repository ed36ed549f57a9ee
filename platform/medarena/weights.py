"""Weights source kinds: where a variant's weights come from and how medarena reaches them.

Each kind (the `kind:` of a variant's `source:` block) is one class registered by name in
`WEIGHTS_SOURCES`; the registry, the CLI, the store and the engines ask it instead of matching
strings. Adding a kind is its pydantic schema in `medarena.schemas` (the `VariantSource` union)
plus one class here and its registration (docs/DESIGN.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medarena.errors import Refused
from medarena.extensions import ExtensionRegistry


class WeightsSource:
    """Behaviour of one source kind. `source` is the variant's validated `source:` block."""

    def location(self, source: Any, variant_name: str, root: Path, state_dir: Path) -> str:
        """Where from_pretrained loads the weights: a local folder or a hub repo id."""
        raise NotImplementedError

    def describe(self, source: Any) -> str:
        """One short line for tables (`medarena models ls`)."""
        raise NotImplementedError

    def revision(self, source: Any) -> str | None:
        """The pinned revision, for kinds that have one."""
        return None

    def recorded_location(self, source: Any, variant_name: str, root: Path, state_dir: Path) -> str:
        """What the store records as the variant's location (where the weights are, or where
        they are distributed)."""
        return self.location(source, variant_name, root, state_dir)

    def loglik_refusal(self, source: Any, variant_name: str) -> str | None:
        """Why the variant cannot be scored by log-likelihood, or None when it can."""
        return None


WEIGHTS_SOURCES: ExtensionRegistry[WeightsSource] = ExtensionRegistry("weights source kind")


def _workspace_path(path: str, root: Path) -> str:
    resolved = Path(path).expanduser()
    return str(resolved if resolved.is_absolute() else root / resolved)


class HubWeights(WeightsSource):
    def location(self, source: Any, variant_name: str, root: Path, state_dir: Path) -> str:
        return source.repo_id

    def describe(self, source: Any) -> str:
        return f"hub:{source.repo_id}"

    def revision(self, source: Any) -> str | None:
        return source.revision


class LocalWeights(WeightsSource):
    def location(self, source: Any, variant_name: str, root: Path, state_dir: Path) -> str:
        return _workspace_path(source.path, root)

    def describe(self, source: Any) -> str:
        return f"local:{source.path}"


class AdapterWeights(LocalWeights):
    """A PEFT adapter folder; its base variant is named in the source."""

    def describe(self, source: Any) -> str:
        return f"adapter:{source.path} on {source.base}"


class EmbeddedWeights(WeightsSource):
    """Built offline by medarena (`medarena tiny build`) into the workspace's state folder."""

    def location(self, source: Any, variant_name: str, root: Path, state_dir: Path) -> str:
        return str(state_dir / "models" / variant_name)

    def describe(self, source: Any) -> str:
        return f"embedded:{source.builder} seed={source.seed}"


class ExternalWeights(WeightsSource):
    """Distributed outside the hub (PhysioNet, a request form): not reachable directly."""

    def location(self, source: Any, variant_name: str, root: Path, state_dir: Path) -> str:
        raise Refused(
            f"variant {variant_name!r} is distributed at {source.url} ({source.access}); "
            "download it and register a copy of the variant with a local source"
        )

    def describe(self, source: Any) -> str:
        return f"external:{source.url}"

    def recorded_location(self, source: Any, variant_name: str, root: Path, state_dir: Path) -> str:
        return source.url


class ApiWeights(WeightsSource):
    """Served behind an OpenAI-compatible API: the location is the server's base URL."""

    def location(self, source: Any, variant_name: str, root: Path, state_dir: Path) -> str:
        return source.base_url

    def describe(self, source: Any) -> str:
        return f"api:{source.model} at {source.base_url}"

    def loglik_refusal(self, source: Any, variant_name: str) -> str | None:
        if not source.prompt_logprobs:
            return (
                f"{variant_name}'s server does not return prompt log-probabilities (source "
                "prompt_logprobs: false): score it with --mode generate"
            )
        if source.serves is None:
            return (
                f"{variant_name} names no variant it serves (source serves:), whose tokenizer "
                "log-likelihood scoring needs: score it with --mode generate"
            )
        return None


WEIGHTS_SOURCES.register("hub", HubWeights())
WEIGHTS_SOURCES.register("local", LocalWeights())
WEIGHTS_SOURCES.register("adapter", AdapterWeights())
WEIGHTS_SOURCES.register("embedded", EmbeddedWeights())
WEIGHTS_SOURCES.register("external", ExternalWeights())
WEIGHTS_SOURCES.register("api", ApiWeights())
