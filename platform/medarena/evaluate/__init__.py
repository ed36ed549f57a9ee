"""Evaluation: benchmark specs and loaders, prompts, engines (hf, vllm), scoring, metrics and the
resumable runner. Heavy backends are imported inside the engines only."""
