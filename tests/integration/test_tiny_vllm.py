"""The tiny family is built for vLLM too: its CPU build loads it and greedy decoding matches
transformers token for token (float32). Slow (~1 min): the engine starts in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROMPTS = ["The mitral valve sits between", "Metformin is a first-line drug for"]
NEW_TOKENS = 8

VLLM_SCRIPT = """
import json, sys
if __name__ == "__main__":  # vLLM spawns its engine process
    from vllm import LLM, SamplingParams
    llm = LLM(model=sys.argv[1], dtype="float32", enforce_eager=True, max_model_len=256, seed=0)
    outputs = llm.generate(json.loads(sys.argv[2]),
                           SamplingParams(temperature=0.0, max_tokens=int(sys.argv[3])))
    print("RESULT " + json.dumps([list(o.outputs[0].token_ids) for o in outputs]))
"""


def hf_greedy(model_dir: Path) -> list[list[int]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    results = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None)
        results.append(out[0, ids.shape[1] :].tolist())
    return results


@pytest.mark.slow
def test_vllm_cpu_loads_the_tiny_model_and_matches_hf_greedy(tiny_model_dir: Path, tmp_path):
    pytest.importorskip("vllm")
    script = tmp_path / "run_vllm.py"
    script.write_text(VLLM_SCRIPT)
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dir), json.dumps(PROMPTS), str(NEW_TOKENS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    vllm_tokens = json.loads(line.removeprefix("RESULT "))
    assert all(len(tokens) == NEW_TOKENS for tokens in vllm_tokens)
    assert vllm_tokens == hf_greedy(tiny_model_dir)
