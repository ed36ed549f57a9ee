"""Evaluation: benchmark specs and loaders, prompts, the resumable runner, and the registries of
its extension points (task kinds, source formats, scoring modes, engines). Heavy backends are
imported inside the engines only."""
