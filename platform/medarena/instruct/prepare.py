"""Everything checked and written before an instruction-tuning run starts: the tokenizer with
the chat template's special tokens, the encoded examples, and the LoRA targets against the
model's real linear layers. A failed check raises before anything is written."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medarena.instruct.data import read_source, to_template_roles
from medarena.instruct.encode import encode
from medarena.instruct.recipe import InstructRecipe, LoraSettings
from medarena.schemas import ChatTemplate
from medarena.errors import Problem, ProblemsError, Refused

EXAMPLES = "examples.npz"
TOKENIZER = "tokenizer"


@dataclass(frozen=True)
class PreparedData:
    examples: int
    tokens: int
    answer_tokens: int
    truncated: int
    dropped: int  # replies cut off entirely by the sequence length
    per_source: dict[str, int]


def linear_layers(location: str) -> dict[str, tuple[int, int]]:
    """(in, out) features of the model's linear layers by qualified name, from its config on
    the meta device (no weights loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(location)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {
        name: (module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }


def check_targets(lora: LoraSettings, layers: dict[str, tuple[int, int]], where: str) -> list[str]:
    """The linear layers the adapters go on; a target that matches none is an error that lists
    the model's linear layer names."""
    if lora.target_modules == "all-linear":  # PEFT's meaning: every linear but the output layer
        return [name for name in layers if not name.endswith("lm_head")]
    chosen, unknown = [], []
    for target in lora.target_modules:
        matched = [name for name in layers if name == target or name.endswith(f".{target}")]
        chosen += matched
        if not matched:
            unknown.append(target)
    if unknown:
        short = sorted({name.rsplit(".", 1)[-1] for name in layers})
        raise ProblemsError(
            [
                Problem(
                    where,
                    None,
                    "lora.target_modules",
                    f"{unknown} match no linear layer of the model; its linear layers are "
                    f"{short} (or use all-linear)",
                )
            ],
            "LoRA target modules not in the model",
        )
    return chosen


def adapter_parameters(layers: dict[str, tuple[int, int]], targets: list[str], r: int) -> int:
    """Trainable LoRA parameters: r x (in + out) per adapted layer."""
    return sum(r * sum(layers[target]) for target in targets)


def prepare_tokenizer(
    location: str, template: ChatTemplate, out_dir: Path
) -> tuple[Any, list[str]]:
    """The base tokenizer plus the template's special tokens it lacks, with the template set as
    its chat_template; saved to out_dir/tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    vocab = tokenizer.get_vocab()
    missing = [token for token in template.added_special_tokens if token not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = template.template
    tokenizer.save_pretrained(out_dir / TOKENIZER)
    return tokenizer, missing


def prepare_data(
    recipe: InstructRecipe,
    template: ChatTemplate,
    tokenizer: Any,
    root: Path,
    out_dir: Path,
    sequence_length: int,
) -> PreparedData:
    """Read, map roles, encode and write every example to out_dir/examples.npz (ids and labels
    concatenated, plus offsets). Every problem of every source is reported together."""
    problems: list[Problem] = []
    ids: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    per_source: dict[str, int] = {}
    tokens = answers = truncated = dropped = 0
    for source in recipe.data:
        where = f"instruct/{recipe.name}.yaml: data[{source.name}]"
        try:
            conversations = read_source(source, root)
        except ProblemsError as error:
            problems += error.problems
            continue
        except (ValueError, FileNotFoundError, Refused) as error:
            problems.append(Problem(where, None, "data", str(error)))
            continue
        kept = 0
        for conversation in conversations:
            try:
                messages = to_template_roles(conversation, template, recipe.system)
            except ValueError as error:
                problems.append(Problem(where, None, "chat_template", str(error)))
                break
            example = encode(tokenizer, template, messages, sequence_length)
            truncated += example.truncated
            if example.answer_tokens == 0:
                dropped += 1
                continue
            for _ in range(source.repeat):
                ids.append(np.asarray(example.input_ids, dtype=np.int32))
                labels.append(np.asarray(example.labels, dtype=np.int32))
            tokens += source.repeat * len(example.input_ids)
            answers += source.repeat * example.answer_tokens
            kept += source.repeat
        per_source[source.name] = kept
    if not problems and not ids:
        problems.append(
            Problem(f"instruct/{recipe.name}.yaml", None, "data", "the instruction set is empty")
        )
    if problems:
        raise ProblemsError(problems, f"instruction data of recipe {recipe.name!r} is unusable")
    offsets = np.cumsum([0, *(len(x) for x in ids)]).astype(np.int64)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkstemp(dir=out_dir, suffix=".npz.partial")[1])
    with staging.open("wb") as handle:
        np.savez(handle, ids=np.concatenate(ids), labels=np.concatenate(labels), offsets=offsets)
    os.replace(staging, out_dir / EXAMPLES)
    return PreparedData(len(ids), tokens, answers, truncated, dropped, per_source)


def write_summary(data: PreparedData, out_dir: Path) -> None:
    (out_dir / "summary.json").write_text(json.dumps(asdict(data), indent=2) + "\n")


class Examples:
    """The encoded examples, in a seeded order per epoch, resumable at any position."""

    def __init__(self, folder: Path):
        arrays = np.load(folder / EXAMPLES)
        self.ids, self.labels, self.offsets = arrays["ids"], arrays["labels"], arrays["offsets"]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def example(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        low, high = self.offsets[index], self.offsets[index + 1]
        return self.ids[low:high], self.labels[low:high]

    def tokens_before(self, seed: int, position: int) -> int:
        """Tokens of the first `position` examples in the seeded order (a resume's count)."""
        order, lengths = self.order(seed, 0), np.diff(self.offsets)
        return int(sum(lengths[next(order)] for _ in range(position)))

    def order(self, seed: int, position: int):
        """Example indices from `position` on: epoch e is a permutation seeded by (seed, e)."""
        count = len(self)
        epoch, offset = divmod(position, count)
        while True:
            permutation = np.random.default_rng([seed, epoch]).permutation(count)
            for index in permutation[offset:]:
                yield int(index)
            epoch, offset = epoch + 1, 0
