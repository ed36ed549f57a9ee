"""PEFT adapters on disk: load one onto its base model, or merge it into standalone weights.

The adapter folder holds the adapter, the tokenizer it was trained with (chat template and any
added special tokens) and, when tokens were added, the resized embedding and output layers.
Used by the evaluation engine (adapter variants) and after instruction tuning (merge).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any


def load_adapted(base_location: str, adapter_dir: str | Path, dtype: Any = None, **kwargs: Any):
    """(model with the adapter applied, its tokenizer). The base's embeddings are resized to
    the adapter's tokenizer first, so adapters trained with added tokens load."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    model = AutoModelForCausalLM.from_pretrained(base_location, dtype=dtype, **kwargs)
    if len(tokenizer) != model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return PeftModel.from_pretrained(model, str(adapter_dir)), tokenizer


def merge_adapter(
    base_location: str, adapter_dir: str | Path, out_dir: str | Path, dtype: Any = "auto"
) -> Path:
    """Write base + adapter as one standalone model (`merge_and_unload`) with the tokenizer.
    Written to a staging folder and moved into place: `out_dir` never holds half a model."""
    out = Path(out_dir)
    model, tokenizer = load_adapted(base_location, adapter_dir, dtype=dtype)
    merged = model.merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.merge-"))
    try:
        merged.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
