"""Inference engines, registered by name. The built-in ones register lazily ("module:Class"),
so their heavy backends are imported only when an engine is chosen; listing names imports
nothing. A new engine is an `Engine` subclass in a module of its own plus one registration
here (or `ENGINES.register(name, cls)` in code that runs before it is chosen)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from medarena.errors import EngineError, Refused
from medarena.evaluate.engines.base import (
    Engine,
    Generation,
    LoglikRequest,
    LoglikResult,
    Sampling,
    Usage,
)
from medarena.evaluate.engines.capability import DEVICE_KINDS, api_mismatch, describe
from medarena.extensions import ExtensionRegistry
from medarena.registry import Registry, VariantEntry

ENGINES: ExtensionRegistry[type[Engine]] = ExtensionRegistry("engine")
ENGINES.register_lazy("hf", "medarena.evaluate.engines.hf:HFEngine")
ENGINES.register_lazy("vllm", "medarena.evaluate.engines.vllm:VLLMEngine")
ENGINES.register_lazy("openai", "medarena.evaluate.engines.api:OpenAIEngine")


def engine_class(name: str) -> type[Engine]:
    """The engine registered as `name` (UnknownName lists the known ones), imported now."""
    try:
        return ENGINES.get(name)
    except ImportError as exc:
        raise EngineError(f"engine {name!r} cannot be imported: {exc}") from exc


def engine_version(name: str) -> str:
    """The version of the engine's backend, from the installed distribution."""
    backend = engine_class(name).backend
    for distribution in backend:
        try:
            return f"{backend[0]} {version(distribution)}"
        except PackageNotFoundError:
            continue
    raise EngineError(f"engine {name!r} needs {backend[0]}, which is not installed")


def load_engine(name: str, registry: Registry, entry: VariantEntry, **options: Any) -> Engine:
    """Load `entry`'s weights into engine `name` with the registry's dtype, context length and
    revision, the variant fields the engine declares (vLLM: tensor_parallel), and `options`,
    which must be ones the engine takes. A quantized variant the engine cannot run on this
    device kind is refused before anything loads."""
    cls = engine_class(name)
    unknown = sorted(set(options) - set(cls.options))
    if unknown:
        raise Refused(
            f"the {name} engine takes no option {', '.join(unknown)}; "
            f"it takes: {', '.join(cls.options) or '(none)'}"
        )
    variant = entry.variant
    check_runnable(name, variant, cls.device_kind(options))
    location = registry.weights_location(variant)
    if cls.serves_api:
        engine_version(name)
        served = variant.source.serves  # type: ignore[union-attr]
        tokenizer = registry.weights_location(registry.variant(served).variant) if served else None
        return cls(
            location,
            source=variant.source,
            max_length=variant.context_length,
            tokenizer=tokenizer,
            **options,
        )
    settings: dict[str, Any] = {
        "revision": getattr(variant.source, "revision", None),
        "dtype": variant.dtype,
        "max_length": variant.context_length,
        **{field: getattr(variant, field) for field in cls.variant_fields},
    }
    if variant.source.kind == "adapter":
        if not cls.applies_adapters:
            raise Refused(
                f"{variant.name} is a LoRA adapter, which the {name} engine does not apply; "
                "evaluate its merged variant, or use an engine that applies adapters"
            )
        base = registry.variant(variant.source.base).variant
        settings["adapter"], location = location, registry.weights_location(base)
    if variant.quantization is not None and variant.quantization.method == "gguf":
        location, settings["gguf_file"] = _gguf_file(variant, location)
    if variant.source.kind == "embedded" and not Path(location).is_dir():
        raise Refused(
            f"{variant.name} is not built yet: run `medarena tiny build --variant {variant.name}`"
        )
    engine_version(name)  # its backend is installed
    from safetensors import SafetensorError

    try:
        return cls(location, **settings, **options)
    except (OSError, SafetensorError) as exc:
        # a damaged or incomplete model folder: say which variant and where
        where = settings.get("adapter") or location
        raise EngineError(f"cannot load {variant.name} from {where}: {exc}") from exc


def capabilities(variant: Any) -> dict[str, dict[str, str]]:
    """engine -> device kind -> "yes (how)" or why not, for every registered engine."""
    table: dict[str, dict[str, str]] = {}
    for name in ENGINES:
        cls = engine_class(name)
        row = {}
        for device in DEVICE_KINDS:
            reason = cls.unsupported(variant, device)
            support = (
                cls.quantized.get(variant.quantization.method) if variant.quantization else None
            )
            how = f" ({support.how})" if support and support.how else ""
            row[device] = f"yes{how}" if reason is None else f"no: {reason}"
        table[name] = row
    return table


def check_runnable(engine: str, variant: Any, device: str) -> None:
    """Refuse, before anything loads, a variant the engine cannot run on this device kind,
    naming the engines and devices that can."""
    mismatch = api_mismatch(engine_class(engine), variant)
    if mismatch is not None:  # the engine runs the other kind of source
        raise Refused(mismatch)
    reason = engine_class(engine).unsupported(variant, device)
    if reason is None:
        return
    able = [
        f"--engine {name} on {kind}"
        for name in ENGINES
        for kind in DEVICE_KINDS
        if engine_class(name).unsupported(variant, kind) is None
    ]
    where = (
        f"run it with {' or '.join(able)}"
        if able
        else "no registered engine runs it on any device kind"
    )
    raise Refused(f"{variant.name} is {describe(variant.quantization)}: {reason}; {where}")


def _gguf_file(variant: Any, location: str) -> tuple[str, str]:
    """(folder or repo, file name) of a GGUF variant: the hub source's `filename`, or a local
    path to the .gguf file (or to a folder holding exactly one)."""
    if variant.source.kind == "hub":
        if not variant.source.filename:
            raise Refused(f"{variant.name} is GGUF: its hub source must name the file (filename:)")
        return location, variant.source.filename
    path = Path(location)
    if path.suffix == ".gguf":
        return str(path.parent), path.name
    found = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if len(found) != 1:
        raise Refused(
            f"{variant.name} is GGUF: point its source path at the .gguf file "
            f"({len(found)} .gguf files in {path})"
        )
    return str(path), found[0].name


__all__ = [
    "ENGINES",
    "Engine",
    "Generation",
    "LoglikRequest",
    "LoglikResult",
    "Sampling",
    "Usage",
    "capabilities",
    "check_runnable",
    "engine_class",
    "engine_version",
    "load_engine",
]
