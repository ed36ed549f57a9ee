import pytest
from pydantic import ValidationError

from medarena.schemas import ChatTemplate, ModelVariant, Quantization, json_schemas


def variant(**overrides):
    data = {
        "name": "x-7b",
        "params_b": 7,
        "source": {"kind": "hub", "repo_id": "org/x-7b"},
        "context_length": 4096,
    }
    return ModelVariant.model_validate({**data, **overrides})


def test_defaults_and_frozen():
    v = variant()
    assert v.source.revision == "main" and v.dtype == "bfloat16" and v.tensor_parallel == 1
    with pytest.raises(ValidationError):
        v.params_b = 13  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"params_b": 0}, "params_b"),
        ({"params_b": "seven"}, "params_b"),
        ({"context_length": -1}, "context_length"),
        ({"name": "Bad Name"}, "name"),
        ({"architecture": "gpt2"}, "architecture"),
        ({"source": {"kind": "ftp", "url": "x"}}, "source"),
        ({"quantization": {"method": "gguf", "bits": 4}}, "quantization"),
        ({"quantization": {"method": "gptq", "bits": 1}}, "quantization.bits"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_variants_name_the_field(overrides, field):
    with pytest.raises(ValidationError) as info:
        variant(**overrides)
    locs = {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert any(loc == field or loc.startswith(field + ".") for loc in locs), locs


def test_only_an_api_variant_may_leave_its_size_undisclosed():
    api = {"kind": "api", "base_url": "https://api.example.org/v1", "model": "m"}
    undisclosed = variant(params_b=None, source={**api, "api_key_env": "KEY"})
    assert undisclosed.params_b is None
    with pytest.raises(ValidationError, match=r"params_b is required for a variant with weights"):
        variant(params_b=None)
    data = variant().model_dump(exclude={"params_b"})
    with pytest.raises(ValidationError, match=r"source kind 'hub'"):
        ModelVariant.model_validate(data)


def test_quantization_gguf_needs_scheme():
    assert Quantization(method="gguf", bits=4, scheme="Q4_K_M").scheme == "Q4_K_M"


def test_chat_template_rejects_bad_jinja_and_unknown_generation_role():
    base = {
        "name": "t",
        "description": "d",
        "source": "s",
        "roles": ["user", "assistant"],
        "generation_role": "assistant",
        "template": "{% for m in messages %}{{ m.content }}",
    }
    with pytest.raises(ValidationError, match="Jinja syntax error"):
        ChatTemplate.model_validate(base)
    with pytest.raises(ValidationError, match="generation_role"):
        ChatTemplate.model_validate({**base, "template": "x", "generation_role": "bot"})


def test_chat_template_render_refuses_unknown_role():
    template = ChatTemplate(
        name="t",
        description="d",
        source="s",
        roles=["user", "assistant"],
        generation_role="assistant",
        template="{% for m in messages %}{{ m.content }}{% endfor %}",
    )
    assert template.render([{"role": "user", "content": "hi"}]) == "hi"
    with pytest.raises(ValueError, match="role 'system'"):
        template.render([{"role": "system", "content": "hi"}])


def test_json_schemas_cover_every_kind():
    schemas = json_schemas()
    assert set(schemas) == {
        "model-family",
        "chat-template",
        "hardware-profile",
        "reference-results",
    }
    assert schemas["model-family"]["additionalProperties"] is False
