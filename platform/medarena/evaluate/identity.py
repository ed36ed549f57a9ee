"""What identifies an evaluation run: every input that can change a stored output is in the run
key, and every field of the evaluation options and of the task spec says where.

The run key (`medarena.store.queries.RUN_KEY`) has parts computed elsewhere: the dataset hash
(the scored items and the few-shot pool, after format conversion, subject filter and limit), the
prompt-template hash (preamble, prompt, delimiters, instruction, CoT trigger, chat template,
truncation policy), the scoring mode's key (`generate+cot+sc5@0.7`), shots, seed, engine and the
weights hash. The rest is the settings hash made here: sampling, generation length and stops,
metric settings and encoders, the extraction rule, and a quantized variant's quantization
(method, bits, group size, scheme).

A field added to `EvalOptions` or `BenchmarkTask` must be placed in one of the tables below; a
test fails until it is, so a new option cannot be forgotten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import Any

from medarena.evaluate.extractors import EXTRACTORS
from medarena.evaluate.kinds import TASK_KINDS
from medarena.evaluate.spec import BenchmarkTask

SETTINGS = "settings_hash"

# EvalOptions field -> the run-key part that covers it
OPTION_COVERAGE: dict[str, str] = {
    "engine": "engine",
    "mode": "scoring_mode",
    "shots": "shots",
    "seed": "seed",
    "cot": "scoring_mode",
    "samples": SETTINGS,
    "temperature": SETTINGS,  # also at one sample: a sampled answer is not the greedy one
    "limit": "dataset_hash",
    "data": "dataset_hash",
    "truncation": "prompt_template_hash",
    "bertscore_encoder": SETTINGS,
    "bartscore_model": SETTINGS,
    "use_chat_template": "prompt_template_hash",
    "extraction": "scoring_mode",  # a suffix, and the rule's version in the settings hash
}
# keyed options that only matter when the task reports the metric named: left out of the
# settings otherwise, so the keys of runs stored before the option existed stay as they were
ONLY_WITH_METRIC: dict[str, str] = {"bartscore_model": "bartscore"}
# EvalOptions fields that cannot change a stored output, and why
OPTIONS_WITHOUT_EFFECT: dict[str, str] = {
    # how many items are stored per transaction. It also decides which items share a padded
    # forward batch of the hf engine, which moves a log-likelihood by float rounding only
    # (up to ~5e-7 measured on CPU), never a prompt, a continuation or the scoring rule
    "chunk_size": "a storage unit, not a scoring one (batching moves floats by rounding only)",
}

# BenchmarkTask field -> the run-key part that covers it
TASK_COVERAGE: dict[str, str] = {
    "name": "task",
    "source_format": "dataset_hash",
    "data": "dataset_hash",
    "hub": "dataset_hash",
    "local": "dataset_hash",
    "subjects": "dataset_hash",
    "preamble": "prompt_template_hash",
    "prompt": "prompt_template_hash",
    "cloze_prompt": "prompt_template_hash",
    "target_delimiter": "prompt_template_hash",
    "fewshot_delimiter": "prompt_template_hash",
    "instruction": "prompt_template_hash",
    "cot_trigger": "prompt_template_hash",
    "kind": SETTINGS,  # the kind decides how outputs are scored
    "metrics": SETTINGS,
    "generation": SETTINGS,  # max_new_tokens, cot_max_new_tokens, stop
}
# BenchmarkTask fields that cannot change a stored output, and why
TASK_FIELDS_WITHOUT_EFFECT: dict[str, str] = {
    "display_name": "prose",
    "description": "prose",
    "citation": "prose",
    "license": "prose",
    "access": "prose",
    # which modes a task allows; the mode a run used is in the key
    "scoring_modes": "a list of what may be run",
}


def settings(
    task: BenchmarkTask, options: Any, quantization: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The settings covered by the settings hash, as plain JSON values. `quantization`: the
    variant's (method, bits, group size, scheme), so a variant re-registered at another
    quantization under the same name is a new run; absent at full precision, which keeps the
    hashes of full-precision runs as they were."""
    spec = task.model_dump(mode="json")
    # the rule's version (medarena's default keeps the key runs stored before rules had names)
    chosen: dict[str, Any] = {"extraction_rule": EXTRACTORS.get(options.extraction).version}
    rule = TASK_KINDS.get(task.kind).rule
    if rule is not None:  # only kinds with a rule of their own: older run keys stay as they were
        chosen["kind_rule"] = rule
    if quantization is not None:
        chosen["variant.quantization"] = quantization
    for name, part in OPTION_COVERAGE.items():
        needs = ONLY_WITH_METRIC.get(name)
        if part == SETTINGS and (needs is None or needs in task.metrics):
            chosen[f"options.{name}"] = getattr(options, name)
    for name, part in TASK_COVERAGE.items():
        if part == SETTINGS:
            chosen[f"task.{name}"] = spec[name]
    return chosen


def settings_hash(
    task: BenchmarkTask, options: Any, quantization: dict[str, Any] | None = None
) -> str:
    canonical = json.dumps(settings(task, options, quantization), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def unplaced_fields(options_type: type, task_type: type = BenchmarkTask) -> list[str]:
    """Fields placed nowhere, or in both tables (what the identity test asserts is empty)."""
    problems = []
    tables = (
        (
            "EvalOptions",
            {f.name for f in fields(options_type)},
            OPTION_COVERAGE,
            OPTIONS_WITHOUT_EFFECT,
        ),
        ("BenchmarkTask", set(task_type.model_fields), TASK_COVERAGE, TASK_FIELDS_WITHOUT_EFFECT),
    )
    for owner, names, keyed, inert in tables:
        for name in sorted(names):
            if (name in keyed) == (name in inert):
                problems.append(f"{owner}.{name}")
        problems += [
            f"{owner}.{name} (no such field)" for name in sorted((keyed | inert).keys() - names)
        ]
    return problems
