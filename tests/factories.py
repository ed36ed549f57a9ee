"""Small builders of store inputs shared by the tests."""

from medarena.results import EvalRunSpec


def eval_spec(variant: str = "tiny-medical-base", task: str = "medqa_4options", **overrides):
    """An evaluation-run spec with plausible reproducibility fields; override what matters."""
    fields = dict(
        variant=variant,
        task=task,
        task_kind="multiple_choice",
        dataset_hash="d" * 64,
        prompt_template_hash="p" * 64,
        scoring_mode="loglik",
        shots=0,
        seed=1234,
        engine="hf",
        engine_version="transformers 5.19.0",
        code_version="test",
    )
    return EvalRunSpec(**{**fields, **overrides})
