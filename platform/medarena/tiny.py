"""The embedded offline family: a tiny Llama-architecture model and a byte-level BPE tokenizer,
built locally from bundled text in seconds, deterministic per seed.

It exists so that every engine (DeepSpeed, PEFT, vLLM, the evaluators) runs for real in tests
and in the demo without downloading anything. Shapes follow what vLLM's CPU attention accepts
(head_dim 32).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from medarena.errors import Problem, ProblemsError
from medarena.registry import Registry

BUILD_FORMAT = 1  # bump when the build changes, so stale builds are rebuilt
MANIFEST = "medarena_build.json"
SPECIAL_TOKENS = ["<s>", "</s>", "<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]


@dataclass(frozen=True)
class TinyShape:
    """Model and tokenizer sizes; the defaults are the embedded family's."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 2
    head_dim: int = 32
    max_position_embeddings: int = 2048


@dataclass(frozen=True)
class TinyBuild:
    path: str
    seed: int
    weights_sha256: str
    tokenizer_sha256: str
    num_parameters: int
    vocab_size: int
    corpus_sha256: str
    build_format: int
    seconds: float


def default_corpus() -> Path:
    return Path(str(resources.files("medarena") / "assets" / "tiny_corpus.txt"))


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_tokenizer(corpus: Path, vocab_size: int, chat_template: str | None):
    """Byte-level BPE (any text encodes, no unknown tokens) wrapped as a fast HF tokenizer that
    prepends <s> like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(corpus)], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A",
        pair="<s> $A <s> $B",
        special_tokens=[("<s>", tokenizer.token_to_id("<s>"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=2048,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def weights_hash(model) -> str:
    """SHA-256 over parameter names and bytes, independent of the file format."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_tiny(
    out_dir: str | Path,
    *,
    seed: int = 0,
    chat_template: str | None = None,
    corpus: Path | None = None,
    shape: TinyShape = TinyShape(),
    force: bool = False,
) -> TinyBuild:
    """Build (or reuse) the tiny model + tokenizer in `out_dir`.

    An existing build with the same seed, corpus, shape and build format is reused. A new build
    is written to a temporary sibling folder and swapped in, so `out_dir` never holds half a model.
    """
    out = Path(out_dir)
    corpus = corpus or default_corpus()
    corpus_sha = _sha256_file(corpus)
    existing = read_manifest(out)
    if existing and not force and _matches(out, existing, seed, corpus_sha, shape, chat_template):
        return existing

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    started = time.perf_counter()
    tokenizer = train_tokenizer(corpus, shape.vocab_size, chat_template)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=shape.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.build-"))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        build = TinyBuild(
            path=str(out),
            seed=seed,
            weights_sha256=weights_hash(model),
            tokenizer_sha256=_sha256_file(staging / "tokenizer.json"),
            num_parameters=sum(p.numel() for p in model.parameters()),
            vocab_size=len(tokenizer),
            corpus_sha256=corpus_sha,
            build_format=BUILD_FORMAT,
            seconds=round(time.perf_counter() - started, 3),
        )
        manifest = {**asdict(build), "shape": asdict(shape), "chat_template": chat_template}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return build


def read_manifest(out_dir: Path) -> TinyBuild | None:
    manifest = Path(out_dir) / MANIFEST
    if not manifest.is_file():
        return None
    data = json.loads(manifest.read_text())
    fields = {name: data[name] for name in TinyBuild.__dataclass_fields__ if name in data}
    return TinyBuild(**fields) if len(fields) == len(TinyBuild.__dataclass_fields__) else None


def _matches(
    out: Path,
    build: TinyBuild,
    seed: int,
    corpus_sha: str,
    shape: TinyShape,
    chat_template: str | None,
) -> bool:
    data = json.loads((out / MANIFEST).read_text())
    return (
        build.seed == seed
        and build.corpus_sha256 == corpus_sha
        and build.build_format == BUILD_FORMAT
        and data.get("shape") == asdict(shape)
        and data.get("chat_template") == chat_template
    )


def build_embedded(registry: Registry, name: str, *, force: bool = False) -> TinyBuild:
    """Build the registry's embedded variant `name` where the registry expects its weights,
    with the variant's chat template (default: ChatML)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a 1 MB save needs no progress bar in the demo output

    entry = registry.variant(name)
    source = entry.variant.source
    if source.kind != "embedded":
        raise ProblemsError(
            [
                Problem(
                    registry.files[f"families:{entry.family.name}"],
                    None,
                    "source",
                    f"variant {name!r} is not embedded (source kind {source.kind!r})",
                )
            ]
        )
    template = registry.chat_template(entry.variant.chat_template or "chatml").template
    return build_tiny(
        registry.weights_location(entry.variant),
        seed=source.seed,
        chat_template=template,
        force=force,
    )
