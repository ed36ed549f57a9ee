"""The `hf` engine: Hugging Face transformers, batched.

Log-likelihood: requests whose model input is identical (every letter choice after the same
question) share one forward pass; inputs are sorted longest first and right-padded, so a batch
wastes little on padding and positions match an unpadded run. Only the positions that score a
continuation token go through the LM head (the rest of the vocabulary projection is skipped).

Generation: prompts sorted by length, left-padded, decoded with `generate` and cut at the stop
strings; bf16 on GPU unless the registry says otherwise.

Quantized variants: GGUF files load through transformers' GGUF support (dequantized to the
compute dtype, with the tokenizer the file carries); GPTQ and AWQ through transformers'
integration with gptqmodel, on CUDA (`quantized` below; `capability` refuses the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from medarena.evaluate.engines.base import (
    Engine,
    Generation,
    LoglikRequest,
    LoglikResult,
    Progress,
    Sampling,
    cut_at_stop,
    stop_token_ids,
)
from medarena.evaluate.engines.capability import Support

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(registry_dtype: str, device: torch.device) -> torch.dtype:
    """The registry's dtype on GPU; float32 on CPU, where bf16 matmuls are slow and inexact."""
    return DTYPES[registry_dtype] if device.type == "cuda" else torch.float32


class HFEngine(Engine):
    name = "hf"
    backend = ("transformers",)
    options = ("batch_size", "device", "static_cache")
    applies_adapters = True
    quantized: ClassVar[dict[str, Support]] = {
        "gguf": Support(("cpu", "cuda"), ("gguf",), "transformers, dequantized"),
        "gptq": Support(("cuda",), ("gptqmodel",), "transformers + gptqmodel"),
        "awq": Support(("cuda",), ("gptqmodel",), "transformers + gptqmodel"),
        "bitsandbytes": Support(("cuda",), ("bitsandbytes",), "transformers + bitsandbytes"),
    }

    @classmethod
    def device_kind(cls, options: dict[str, Any]) -> str:
        if options.get("device"):
            return torch.device(options["device"]).type
        return super().device_kind(options)

    def __init__(
        self,
        location: str,
        *,
        revision: str | None = None,
        dtype: str = "bfloat16",
        max_length: int = 2048,
        batch_size: int = 32,
        device: str | None = None,
        static_cache: bool = False,
        adapter: str | None = None,
        gguf_file: str | None = None,
    ):
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        model, self.tokenizer = self._load(location, revision, adapter, gguf_file)
        self.model = model.eval()
        self.device = self.model.device  # where inputs go (the first shard)
        self.max_length = max_length
        self.batch_size = batch_size
        self.static_cache = static_cache
        self.pad_id = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id or 0
        )

    def _load(
        self, location: str, revision: str | None, adapter: str | None, gguf_file: str | None
    ) -> tuple[Any, Any]:
        """The model on this engine's device(s), and its tokenizer."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if gguf_file is not None:
            tokenizer = gguf_tokenizer(location, gguf_file, revision)
            model = AutoModelForCausalLM.from_pretrained(
                location, gguf_file=gguf_file, revision=revision, dtype=self.dtype
            )
            return model.to(self.device), tokenizer
        if adapter is not None:  # a LoRA adapter on its base, with the adapter's tokenizer
            from medarena.adapters import load_adapted

            model, tokenizer = load_adapted(location, adapter, dtype=self.dtype)
            return model.to(self.device), tokenizer
        tokenizer = AutoTokenizer.from_pretrained(location, revision=revision)
        if self.device.type == "cuda":
            # spread over every visible GPU when one does not hold the weights (70B in bf16)
            model = AutoModelForCausalLM.from_pretrained(
                location, revision=revision, dtype=self.dtype, device_map="auto"
            )
            return model, tokenizer
        model = AutoModelForCausalLM.from_pretrained(location, revision=revision, dtype=self.dtype)
        return model.to(self.device), tokenizer

    # ------------------------------------------------------------------------ log-likelihood

    @torch.inference_mode()
    def loglikelihood(
        self, requests: Sequence[LoglikRequest], progress: Progress | None = None
    ) -> list[LoglikResult]:
        # model input -> the requests it scores (shared when only the last token differs)
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, request in enumerate(requests):
            whole = request.context + request.continuation
            if len(whole) - 1 > self.max_length:
                raise ValueError(f"request {index} is longer than {self.max_length} tokens")
            groups.setdefault(whole[:-1], []).append(index)
        inputs = sorted(groups, key=len, reverse=True)
        results: list[LoglikResult | None] = [None] * len(requests)
        for start in range(0, len(inputs), self.batch_size):
            batch = inputs[start : start + self.batch_size]
            self._score_batch(batch, groups, requests, results)
            if progress:
                progress(sum(len(groups[key]) for key in batch))
        return [result for result in results if result is not None]

    def _score_batch(
        self,
        batch: list[tuple[int, ...]],
        groups: dict[tuple[int, ...], list[int]],
        requests: Sequence[LoglikRequest],
        results: list[LoglikResult | None],
    ) -> None:
        width = len(batch[0])
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
        hidden = self.model.get_decoder()(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
        ).last_hidden_state
        # rows and positions of every scored token, and the token it should be
        rows, positions, targets, owners = [], [], [], []
        for row, tokens in enumerate(batch):
            for index in groups[tokens]:
                continuation = requests[index].continuation
                first = len(tokens) - len(continuation)
                for offset, token in enumerate(continuation):
                    rows.append(row)
                    positions.append(first + offset)
                    targets.append(token)
                    owners.append(index)
        where = hidden.device
        selected = hidden[torch.tensor(rows, device=where), torch.tensor(positions, device=where)]
        logits = self.model.get_output_embeddings()(selected).float()
        logprobs = torch.log_softmax(logits, dim=-1)
        target = torch.tensor(targets, device=logprobs.device)
        token_logprob = logprobs.gather(1, target[:, None])[:, 0].tolist()
        greedy = (logprobs.argmax(dim=-1) == target).tolist()
        totals: dict[int, list[Any]] = {}
        for owner, value, is_top in zip(owners, token_logprob, greedy, strict=True):
            total = totals.setdefault(owner, [0.0, True])
            total[0] += value
            total[1] = total[1] and is_top
        for owner, (value, is_top) in totals.items():
            results[owner] = LoglikResult(value, bool(is_top))

    # ---------------------------------------------------------------------------- generation

    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[tuple[int, ...]], sampling: Sampling, items: Sequence[str] = ()
    ) -> list[Generation]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
        outputs: list[Generation | None] = [None] * len(prompts)
        generator_seed = sampling.seed
        # a reply ends at end-of-sequence or the template's end of turn (by id, as special tokens
        # vanish from decoded text), and is cut at the first stop string
        stops = [*sampling.stop, *sampling.end_of_turn]
        ends = [
            i
            for i in (
                self.tokenizer.eos_token_id,
                *stop_token_ids(self.tokenizer, sampling.end_of_turn),
            )
            if i is not None
        ]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(prompts[i]) for i in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, index in enumerate(chunk):  # left padding: every prompt ends at `width`
                tokens = prompts[index]
                ids[row, width - len(tokens) :] = torch.tensor(tokens)
                mask[row, width - len(tokens) :] = 1
            torch.manual_seed(generator_seed + start)
            options: dict[str, Any] = {
                "max_new_tokens": sampling.max_new_tokens,
                "num_return_sequences": sampling.n,
                "pad_token_id": self.pad_id,
                "do_sample": sampling.temperature > 0,
            }
            if sampling.temperature > 0:
                options.update(temperature=sampling.temperature, top_p=1.0, top_k=0)
            if stops:
                options.update(stop_strings=stops, tokenizer=self.tokenizer)
            if ends:
                options["eos_token_id"] = ends
            if self.static_cache:
                options["cache_implementation"] = "static"
            out = self.model.generate(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **options
            )
            new = out[:, width:].reshape(len(chunk), sampling.n, -1).cpu()
            for row, index in enumerate(chunk):
                texts, count = [], 0
                for sample in new[row]:
                    tokens = _until_end(sample.tolist(), ends)
                    count += len(tokens)
                    text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                    texts.append(cut_at_stop(text, stops))
                outputs[index] = Generation(tuple(texts), count)
        return [output for output in outputs if output is not None]

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def gguf_tokenizer(location: str, gguf_file: str, revision: str | None) -> Any:
    """The tokenizer a GGUF file carries. transformers builds it without the file's
    `tokenizer.ggml.add_bos_token` for byte-level vocabularies; set it, so prompts encode to the
    ids the model was trained on (a Llama prompt starts with <s>)."""
    import gguf
    from transformers import AutoTokenizer
    from transformers.utils import cached_file

    tokenizer = AutoTokenizer.from_pretrained(location, gguf_file=gguf_file, revision=revision)
    path = cached_file(location, gguf_file, revision=revision)
    field = gguf.GGUFReader(path).fields.get("tokenizer.ggml.add_bos_token")
    if field is not None:
        tokenizer.add_bos_token = bool(field.contents())
    return tokenizer


def _until_end(tokens: list[int], end_ids: list[int]) -> list[int]:
    """Generated tokens up to (not including) the first end-of-sequence or end-of-turn token;
    padding only follows it."""
    ends = [tokens.index(i) for i in end_ids if i in tokens]
    return tokens[: min(ends)] if ends else tokens
