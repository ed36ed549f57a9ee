"""Pydantic v2 schemas for everything a user writes in YAML.

Every model forbids unknown keys and is frozen, so a typo in a card is an error that names the
field instead of a silently ignored setting. `json_schemas()` emits the JSON Schema used in docs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

import jinja2
import jinja2.sandbox
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
Name = Annotated[
    str,
    Field(pattern=NAME_PATTERN, max_length=100, description="lower-case id: a-z 0-9 . _ -"),
]


@lru_cache(maxsize=512)
def compiled_template(environment: jinja2.Environment, template: str) -> jinja2.Template:
    """`environment.from_string(template)`, compiled once per string (`from_string` compiles
    every call: a benchmark's prompt was compiled again for each of its items)."""
    return environment.from_string(template)


def check_jinja_syntax(environment: jinja2.Environment, template: str) -> str:
    """`template` unchanged, or a ValueError naming the template line of a syntax error."""
    try:
        compiled_template(environment, template)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(
            f"Jinja syntax error on template line {exc.lineno}: {exc.message}"
        ) from None
    return template


class Spec(BaseModel):
    """Base of every YAML-facing schema: unknown keys rejected, instances immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- variant sources


class HubSource(Spec):
    """Weights on the Hugging Face hub."""

    kind: Literal["hub"]
    repo_id: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    revision: str = Field("main", description="branch, tag or commit sha; pin a sha for results")
    filename: str | None = Field(None, description="one file in the repo (GGUF)")


class LocalSource(Spec):
    """Weights in a local folder; relative paths are relative to the workspace."""

    kind: Literal["local"]
    path: str


class AdapterSource(Spec):
    """A PEFT adapter folder (relative paths: to the workspace) applied to variant `base`."""

    kind: Literal["adapter"]
    path: str
    base: Name


class ExternalSource(Spec):
    """Weights distributed outside the hub (PhysioNet, request form): download, then point
    `local_path` of a copy of this card at the folder."""

    kind: Literal["external"]
    url: str
    access: str = Field(description="what it takes to obtain the weights")


class EmbeddedSource(Spec):
    """Built offline by medarena itself (the tiny family), deterministic per seed."""

    kind: Literal["embedded"]
    builder: Literal["tiny"]
    seed: int = Field(0, ge=0)


class ApiPrices(Spec):
    """What the provider charges, in US dollars per million tokens, and where that was read."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    source: str = Field(description="where the prices are stated (URL)")
    date: str = Field(description="when they were read there (YYYY-MM-DD)")


class ApiSource(Spec):
    """A model behind an OpenAI-compatible API (OpenAI, `vllm serve`): evaluated with
    `--engine openai`. The key is read from the environment variable `api_key_env` at run time;
    it is never stored, logged or shown."""

    kind: Literal["api"]
    base_url: str = Field(pattern=r"^https?://", description="e.g. https://api.openai.com/v1")
    model: str = Field(min_length=1, description="the server's model id")
    endpoint: Literal["chat", "completions"] = Field(
        "chat", description="chat: the server applies its chat template; completions: raw text"
    )
    api_key_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$", description="variable holding the key")
    prompt_logprobs: bool = Field(
        False, description="the server returns prompt log-probabilities (vLLM's completions)"
    )
    serves: Name | None = Field(
        None,
        description="the registered variant the server runs: its tokenizer makes token-id "
        "prompts, as the local engines score them (needed for log-likelihood modes)",
    )
    prices: ApiPrices | None = Field(None, description="unset: cost is not computed")

    @model_validator(mode="after")
    def _loglik_needs_completions(self) -> ApiSource:
        if self.prompt_logprobs and self.endpoint != "completions":
            raise ValueError("prompt_logprobs comes from the completions endpoint")
        return self


VariantSource = Annotated[
    HubSource | LocalSource | AdapterSource | ExternalSource | EmbeddedSource | ApiSource,
    Field(discriminator="kind"),
]


class Quantization(Spec):
    """Post-training quantization of a published variant."""

    method: Literal["gptq", "awq", "gguf", "bitsandbytes"]
    bits: int = Field(ge=2, le=8)
    group_size: int | None = Field(None, gt=0, description="GPTQ/AWQ group size")
    scheme: str | None = Field(None, description="GGUF quant type, e.g. Q4_K_M")

    @model_validator(mode="after")
    def _gguf_has_scheme(self) -> Quantization:
        if self.method == "gguf" and not self.scheme:
            raise ValueError("a gguf quantization names its scheme (e.g. Q4_K_M)")
        return self


class ModelVariant(Spec):
    """One set of weights of a family: a size, a chat tune, a quantization."""

    name: Name
    params_b: float | None = Field(
        None,
        gt=0,
        description="parameter count in billions; an api variant may leave it out when the "
        "provider never published it (shown as undisclosed)",
    )
    source: VariantSource
    context_length: int = Field(gt=0)
    architecture: Literal["llama", "mistral"] = "llama"
    dtype: Literal["float32", "float16", "bfloat16"] = "bfloat16"
    quantization: Quantization | None = None
    chat_template: Name | None = Field(
        None, description="name of a chat template; None for a base model prompted plainly"
    )
    instruction_tuned: bool = False
    gated: bool = Field(False, description="access must be requested before download")
    parent: Name | None = Field(None, description="variant this one was trained or quantized from")
    recipes: list[str] = Field(
        default_factory=list, description="recipes (pretrain/instruct) that produced it"
    )
    tensor_parallel: int = Field(1, ge=1, description="GPUs per replica for inference (vLLM)")
    notes: str | None = None

    @model_validator(mode="after")
    def _size_known_for_weights(self) -> ModelVariant:
        # memory, GPU-hour and training plans need the size of weights medarena loads; a model
        # behind an API is only called (OpenAI never published GPT-3.5's or GPT-4's size)
        if self.params_b is None and self.source.kind != "api":
            raise ValueError(
                f"params_b is required for a variant with weights (source kind "
                f"{self.source.kind!r}); only an api variant may leave its size undisclosed"
            )
        return self


class ModelFamily(Spec):
    """A model card: one family, its lineage and its variants."""

    name: Name
    display_name: str
    developer: str
    license: str
    paper: str | None = Field(None, description="arXiv id or URL")
    homepage: str | None = None
    continued_from: str | None = Field(
        None, description="family (or outside model) it was continually trained from"
    )
    description: str | None = None
    variants: list[ModelVariant] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _unique_variant_names(cls, variants: list[ModelVariant]) -> list[ModelVariant]:
        seen: set[str] = set()
        for variant in variants:
            if variant.name in seen:
                raise ValueError(f"variant {variant.name!r} appears twice")
            seen.add(variant.name)
        return variants


# ----------------------------------------------------------------------------- chat templates

_JINJA = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)


class ChatTemplate(Spec):
    """A named conversation format, rendered by a Hugging Face-compatible Jinja template.

    The same string goes into `tokenizer.chat_template`, so training and evaluation render
    identically. `roles` lists the roles it accepts; `generation_role` is the one the model writes.
    """

    name: Name
    description: str
    source: str = Field(description="where the format is documented")
    roles: list[str] = Field(min_length=1)
    generation_role: str
    added_special_tokens: list[str] = Field(default_factory=list)
    stop_strings: list[str] = Field(default_factory=list)
    default_system: str | None = None
    template: str

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, template: str) -> str:
        return check_jinja_syntax(_JINJA, template)

    @model_validator(mode="after")
    def _generation_role_known(self) -> ChatTemplate:
        if self.generation_role not in self.roles:
            raise ValueError(f"generation_role {self.generation_role!r} is not in roles")
        if not [r for r in self.roles if r not in ("system", self.generation_role)]:
            raise ValueError("roles need one that asks besides system and the generation role")
        return self

    @property
    def user_role(self) -> str:
        """The role that asks (user, question, Human ...): neither system nor the model's."""
        return next(r for r in self.roles if r not in ("system", self.generation_role))

    def render(
        self,
        messages: list[dict[str, str]],
        *,
        add_generation_prompt: bool = False,
        bos_token: str = "",
        eos_token: str = "",
    ) -> str:
        """Render a conversation to text, refusing roles the template does not know."""
        for index, message in enumerate(messages):
            if message.get("role") not in self.roles:
                raise ValueError(
                    f"message {index} has role {message.get('role')!r}; chat template "
                    f"{self.name!r} accepts {self.roles}"
                )
        return compiled_template(_JINJA, self.template).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        )


# ------------------------------------------------------------------ datasets (benchmarks, corpora)


class FileData(Spec):
    """Records in a local file (jsonl, json, csv, tsv, parquet; xml: medarena.data.pair_xml) or, for
    corpora, a folder of .txt files; relative to the folder of the YAML that names it
    (benchmarks/, pretrain/)."""

    kind: Literal["file"] = "file"
    path: str
    file_format: Literal["jsonl", "json", "csv", "tsv", "parquet", "xml"] | None = Field(
        None, description="defaults to the file's suffix"
    )


# Hub datasets that only load through a loading script, which `datasets` >= 4 refuses ("Dataset
# scripts are no longer supported"): a spec naming one is refused when it is validated, with the
# script-free repository to use instead. One entry per repository: (why, what to use).
SCRIPT_ONLY_DATASETS: dict[str, tuple[str, str]] = {
    "bigbio/med_qa": (
        "main has med_qa.py; its parquet conversion PRs #6 and #7 were not merged",
        "fzkuji/MedQA (its parquet conversion, same configs)",
    ),
    "bigbio/pubmed_qa": (
        "pubmed_qa.py; fails with datasets 5 in lm-evaluation-harness issues #3171 and #3645",
        "qiaojin/PubMedQA pqa_labeled with rows: the authors' 500 test PMIDs",
    ),
    "togethercomputer/RedPajama-Data-1T-Sample": (
        "main has RedPajama-Data-1T-Sample.py over its JSONL files",
        "a parquet sample of RedPajama such as DKYoon/SlimPajama-6B",
    ),
}


class RowSelection(Spec):
    """The rows of a split whose id is (or is not) listed in a file: a split that a repository
    ships merged with others, such as PubMedQA's 500 test items inside pqa_labeled's 1,000."""

    field: str = Field(description="the record field that holds the id (PubMedQA: pubid)")
    ids: str = Field(
        description="JSON file of ids (a list, or an object keyed by id), relative to the YAML"
    )
    keep: Literal["listed", "unlisted"] = "listed"


def _unset(value: object) -> bool:
    return value is None


class HubData(Spec):
    """Records from the Hugging Face hub through `datasets.load_dataset`."""

    kind: Literal["hub"]
    dataset: str
    config: str | None = None
    split: str
    revision: str | None = Field(None, description="pin a commit sha for reproducible results")
    # the two below are left out of dumps when unset, so existing recipes keep their content hash
    rows: RowSelection | None = Field(
        None, description="keep only the rows listed (or not) in an id file", exclude_if=_unset
    )
    expected_items: int | None = Field(
        None,
        gt=0,
        description="rows the split holds (after `rows`); `benchmarks validate --hub` checks it",
        exclude_if=_unset,
    )

    @field_validator("dataset")
    @classmethod
    def _loads_without_a_script(cls, dataset: str) -> str:
        if dataset in SCRIPT_ONLY_DATASETS:
            why, instead = SCRIPT_ONLY_DATASETS[dataset]
            raise ValueError(
                f"{dataset} loads only through a dataset script, which the installed `datasets` "
                f"refuses ({why}); use {instead}"
            )
        return dataset


def _data_kind(value: object) -> str:
    """`kind` may be left out for a file, the common case."""
    if isinstance(value, dict):
        return str(value.get("kind", "file"))
    return str(getattr(value, "kind", "file"))


DataSource = Annotated[
    Annotated[FileData, Tag("file")] | Annotated[HubData, Tag("hub")],
    Discriminator(_data_kind),
]


# ------------------------------------------------------------------------- hardware profiles


class HardwareProfile(Spec):
    """A node type of a training cluster; figures from the vendor's datasheet."""

    name: Name
    display_name: str
    gpu: str
    gpus_per_node: int = Field(gt=0)
    gpu_memory_gb: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0, description="dense bf16 peak per GPU, TFLOP/s")
    memory_bandwidth_tbs: float = Field(gt=0, description="HBM bandwidth per GPU, TB/s")
    intra_node: str = Field(description="GPU-to-GPU link inside a node")
    intra_node_gbs: float = Field(gt=0, description="per-GPU bidirectional bandwidth, GB/s")
    inter_node: str
    inter_node_gbits_per_gpu: float = Field(gt=0, description="network per GPU, Gbit/s")
    cpu_memory_gb: float = Field(gt=0, description="host memory per node (offload room)")
    source: str


# ------------------------------------------------------------------------ reference results


class ReferenceResult(Spec):
    """One published number: never measured here, always shown apart from measured results,
    and beside a measured one only under the same protocol."""

    variant: Name
    task: Name = Field(description="a benchmark spec under benchmarks/, unless `unmapped`")
    metric: str = Field(pattern=r"^[a-z0-9_]+$")
    value: float
    shots: int | Literal["unknown"] = Field(
        description="demonstrations in the prompt, as the source states them (never assumed 0)"
    )
    protocol: Name | None = Field(
        None, description="the preset under benchmarks/protocols/ the number was obtained with"
    )
    other_protocol: str | None = Field(
        None, description="how it was obtained when no preset matches (e.g. fine-tuned per task)"
    )
    items: int | None = Field(None, gt=0, description="items the number is computed on")
    split: str | None = Field(None, description="the split the number is computed on")
    unmapped: str | None = Field(
        None, description="why `task` maps onto no benchmark spec (e.g. an unstated MedQA set)"
    )
    setting: str = Field(description="how the authors obtained it, in their words")
    table: str | None = Field(None, description="table or figure in the source")

    @model_validator(mode="after")
    def _one_protocol(self) -> ReferenceResult:
        if (self.protocol is None) == (self.other_protocol is None):
            raise ValueError("name exactly one of `protocol` (a preset) and `other_protocol`")
        return self


class ReferenceSet(Spec):
    """A file of published results from one source (a paper or a model card)."""

    source: str = Field(description="citation of the paper or card")
    url: str
    results: list[ReferenceResult] = Field(min_length=1)


SCHEMAS: dict[str, type[Spec]] = {
    "model-family": ModelFamily,
    "chat-template": ChatTemplate,
    "hardware-profile": HardwareProfile,
    "reference-results": ReferenceSet,
}


def json_schemas() -> dict[str, dict]:
    """JSON Schema of every YAML kind, keyed by kind (for docs and editor completion)."""
    return {kind: model.model_json_schema() for kind, model in SCHEMAS.items()}
