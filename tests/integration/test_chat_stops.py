"""A chat model's reply ends at its template's end-of-turn token, in the hf engine's decoding."""

from pathlib import Path

from medarena.evaluate.engines.base import Sampling, stop_token_ids
from medarena.evaluate.engines.hf import HFEngine, _until_end


def test_single_token_markers_are_stopped_on_by_id(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert stop_token_ids(tokenizer, ["<|im_end|>", "\n\nQuestion:"]) == [im_end]
    assert _until_end([100, 101, im_end, 102, 1], [1, im_end]) == [100, 101]
    assert _until_end([100, 101, 102], [1, im_end]) == [100, 101, 102]


def test_generation_ends_at_the_end_of_turn_marker(tiny_model_dir: Path):
    engine = HFEngine(str(tiny_model_dir), max_length=256, device="cpu", dtype="float32")
    prompt = tuple(engine.tokenizer.encode("Question: which drug treats absence seizures?"))
    free = engine.generate([prompt], Sampling(max_new_tokens=12))[0].texts[0]
    ids = engine.tokenizer.encode(free, add_special_tokens=False)
    # the greedy reply's fourth token as the end-of-turn marker: the reply must stop before it
    marker = engine.tokenizer.decode(ids[3:4])
    assert marker.strip() and free.find(marker) > 0
    stopped = engine.generate([prompt], Sampling(max_new_tokens=12, end_of_turn=(marker,)))[0]
    assert stopped.texts[0] == free[: free.find(marker)]
    engine.close()
