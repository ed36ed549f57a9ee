"""Which engine runs which variant on which device kind: one answer for `medarena eval` (a
refusal before anything loads) and `medarena models show` (the table of what can run it).

An engine class declares the quantization methods it runs in `quantized` (method -> `Support`:
the device kinds with a kernel, and the Python packages it needs); a variant without
quantization runs on every engine and device kind. An engine with other limits overrides
`Engine.unsupported`. The table over every registered engine (`capabilities`) and the
refusal (`check_runnable`) are in `medarena.evaluate.engines`, beside the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from medarena.results import METHOD_NAMES, quantization_label

DEVICE_KINDS = ("cpu", "cuda")


@dataclass(frozen=True)
class Support:
    """Where an engine runs one quantization method."""

    devices: tuple[str, ...]
    needs: tuple[str, ...] = ()  # modules that must be installed (dotted names)
    how: str = ""  # a few words on the path taken, for `models show`


def describe(quantization: Any) -> str:
    """`GGUF Q4_K_M (4-bit)`, `AWQ 4-bit g128`, or `full precision`."""
    if quantization is None:
        return "full precision"
    q = quantization
    return quantization_label(q.method, q.bits, q.group_size, q.scheme) or "full precision"


def api_mismatch(cls: Any, variant: Any) -> str | None:
    """Why engine class `cls` cannot run `variant` at all: an API engine runs only variants of
    source kind api, the others only variants with weights. None when the kinds agree."""
    if (variant.source.kind == "api") == cls.serves_api:
        return None
    if cls.serves_api:
        return f"the {cls.name} engine runs API variants (source kind api); {variant.name} is not"
    return f"{variant.name} is served by an API: evaluate it with --engine openai"


def unsupported(cls: Any, variant: Any, device: str) -> str | None:
    """Why engine class `cls` cannot run `variant` on device kind `device`, or None when it can."""
    mismatch = api_mismatch(cls, variant)
    if mismatch is not None:
        return mismatch
    quantization = variant.quantization
    if quantization is None:
        return None
    support = cls.quantized.get(quantization.method)
    if support is None:
        return f"the {cls.name} engine has no {METHOD_NAMES[quantization.method]} support"
    if device not in support.devices:
        return f"the {cls.name} engine has no {describe(quantization)} kernel on {device}"
    missing = [module for module in support.needs if not installed(module)]
    if missing:
        return f"the {cls.name} engine needs {', '.join(missing)} (not installed) for it"
    return None


def installed(module: str) -> bool:
    """Whether dotted module `module` is installed, found without importing its package (a
    submodule shows whether the installed version of a library still has a feature)."""
    top, *rest = module.split(".")
    spec = find_spec(top)
    if spec is None:
        return False
    if not rest:
        return True
    for folder in spec.submodule_search_locations or ():
        path = Path(folder).joinpath(*rest)
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False
