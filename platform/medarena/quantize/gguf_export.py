"""Write a Llama-architecture Hugging Face folder (safetensors + a fast byte-level BPE
tokenizer, such as the embedded tiny model) as one GGUF file, quantized with the `gguf`
package's own quantizers.

The file follows llama.cpp's layout so both transformers' GGUF loading and vLLM read it: the
`llama.*` hyperparameters, the `tokenizer.ggml.*` vocabulary (model `gpt2`: byte-level BPE with
its merges), tensors under GGUF names, and the query / key projections permuted from Hugging
Face's rotary layout to GGML's (readers undo it). Every weight matrix is stored in the chosen
type and the norms in F32 (medarena's choice: llama.cpp's own mixes such as Q4_K_M keep a few
matrices at higher precision).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medarena.errors import Refused

# the types this exporter writes (each tested to load back through transformers), with their
# nominal bits per weight (the registry's `bits`); the K-quants (Q4_K_M...) need rows in
# multiples of 256 and llama.cpp's per-tensor mixes, which this writer does not reproduce
GGUF_TYPES: dict[str, int] = {
    "F32": 32,
    "F16": 16,
    "Q8_0": 8,
    "Q5_0": 5,
    "Q5_1": 5,
    "Q4_0": 4,
    "Q4_1": 4,
}
# Hugging Face parameter name (inside a layer) -> GGUF tensor name
_LAYER_TENSORS = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}
_TOP_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_CONTROL, _NORMAL = 3, 1  # tokenizer.ggml.token_type values


@dataclass(frozen=True)
class GgufExport:
    path: Path
    qtype: str
    bits: int
    tensors: int
    bytes: int


def gguf_name(hf_name: str) -> str:
    """The GGUF tensor name of a Llama parameter (a KeyError for any other parameter)."""
    if hf_name in _TOP_TENSORS:
        return _TOP_TENSORS[hf_name]
    _model, _layers, index, rest = hf_name.split(".", 3)
    return f"blk.{int(index)}.{_LAYER_TENSORS[rest]}"


def rotary_to_ggml(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder a q/k projection's rows per head from Hugging Face's half-split rotary layout
    (the first half of a head's dimensions pairs with the second) to GGML's interleaved one."""
    rows = weight.shape[0]
    halves = weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
    return halves.swapaxes(1, 2).reshape(weight.shape)


def export_gguf(model_dir: str | Path, out_file: str | Path, qtype: str = "Q8_0") -> GgufExport:
    """Write `model_dir` (a Llama folder) to `out_file` in GGUF type `qtype`; the file appears
    only once complete."""
    import gguf
    from safetensors.numpy import load_file

    if qtype not in GGUF_TYPES:
        raise Refused(
            f"GGUF type {qtype!r} is not one this exporter writes: {', '.join(GGUF_TYPES)}"
        )
    source = Path(model_dir)
    config = json.loads((source / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise Refused(f"{source}: only Llama-architecture models export to GGUF here")
    files = sorted(source.glob("*.safetensors"))
    if not files:
        raise Refused(f"{source} holds no .safetensors weights")
    weights: dict[str, np.ndarray] = {}
    for file in files:
        weights.update(load_file(str(file)))
    if "lm_head.weight" not in weights:  # tied embeddings: llama.cpp reads token_embd then
        weights.pop("lm_head.weight", None)

    kind = gguf.GGMLQuantizationType[qtype]
    out = Path(out_file)
    staging = out.with_name(f".{out.name}.partial")
    writer = gguf.GGUFWriter(str(staging), "llama")
    try:
        _write_hyperparameters(writer, config)
        _write_tokenizer(writer, source)
        heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads")
        for name in sorted(weights):
            array = weights[name].astype(np.float32)
            if name.endswith("q_proj.weight"):
                array = rotary_to_ggml(array, heads)
            elif name.endswith("k_proj.weight"):
                array = rotary_to_ggml(array, kv_heads or heads)
            _add_tensor(writer, gguf_name(name), array, kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        staging.replace(out)
    finally:
        staging.unlink(missing_ok=True)
    return GgufExport(out, qtype, GGUF_TYPES[qtype], len(weights), out.stat().st_size)


def _add_tensor(writer, name: str, array: np.ndarray, kind) -> None:
    import gguf

    if array.ndim == 1 or kind == gguf.GGMLQuantizationType.F32:
        writer.add_tensor(name, array)
        return
    if kind == gguf.GGMLQuantizationType.F16:
        writer.add_tensor(name, array.astype(np.float16))
        return
    block, _ = gguf.GGML_QUANT_SIZES[kind]
    if array.shape[-1] % block:
        raise Refused(
            f"{kind.name} packs rows in blocks of {block} weights; tensor {name} has rows of "
            f"{array.shape[-1]}: choose another type"
        )
    writer.add_tensor(name, gguf.quants.quantize(array, kind), raw_dtype=kind)


def _write_hyperparameters(writer, config: dict) -> None:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(0)


def _write_tokenizer(writer, source: Path) -> None:
    """The vocabulary of the folder's tokenizer.json (byte-level BPE) as GGUF metadata."""
    spec = json.loads((source / "tokenizer.json").read_text())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise Refused(
            f"{source}/tokenizer.json: only byte-level BPE tokenizers export to GGUF here"
        )
    vocab = dict(model["vocab"])
    special = {token["content"] for token in spec.get("added_tokens", []) if token["special"]}
    for token in spec.get("added_tokens", []):
        vocab[token["content"]] = token["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda pair: pair[1])]
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise Refused(f"{source}/tokenizer.json: token ids are not contiguous from 0")
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"]]
    tokenizer_config = json.loads((source / "tokenizer_config.json").read_text())
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([_CONTROL if token in special else _NORMAL for token in tokens])
    writer.add_token_merges(merges)
    for role, add in (
        ("bos", writer.add_bos_token_id),
        ("eos", writer.add_eos_token_id),
        ("unk", writer.add_unk_token_id),
        ("pad", writer.add_pad_token_id),
    ):
        token = tokenizer_config.get(f"{role}_token")
        if isinstance(token, dict):
            token = token.get("content")
        if token in vocab:
            add(vocab[token])
    prepends_bos = "<s>" in json.dumps(spec.get("post_processor") or {})
    writer.add_add_bos_token(prepends_bos)
    if tokenizer_config.get("chat_template"):
        writer.add_chat_template(tokenizer_config["chat_template"])


def main(argv: list[str] | None = None) -> None:
    """`python -m medarena.quantize.gguf_export MODEL_DIR OUT.gguf --type Q4_0`"""
    import argparse

    parser = argparse.ArgumentParser(description="Write a Llama folder as one GGUF file.")
    parser.add_argument("model_dir")
    parser.add_argument("out_file")
    parser.add_argument("--type", default="Q8_0", choices=sorted(GGUF_TYPES))
    args = parser.parse_args(argv)
    done = export_gguf(args.model_dir, args.out_file, args.type)
    print(f"wrote {done.path} ({done.qtype}, {done.tensors} tensors, {done.bytes:,} bytes)")


if __name__ == "__main__":
    main()
