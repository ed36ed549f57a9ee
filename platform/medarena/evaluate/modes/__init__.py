"""Scoring modes, one module each, registered by name in SCORING_MODES (see `base`)."""

from medarena.evaluate.modes.base import (
    SCORING_MODES,
    BuiltPrompt,
    ChunkResult,
    ChunkScorer,
    ScoringMode,
    ScoringOptions,
)

__all__ = [
    "SCORING_MODES",
    "BuiltPrompt",
    "ChunkResult",
    "ChunkScorer",
    "ScoringMode",
    "ScoringOptions",
]
