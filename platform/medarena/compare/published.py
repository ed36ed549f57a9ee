"""Whether a published value may stand beside a measured one: only under the same protocol,
otherwise the difference is said in words. A pure function of leaderboard rows, so the CLI and
the dashboard (which never imports the evaluation code) say the same."""

from __future__ import annotations

from medarena.results import LeaderboardRow
from medarena.store.queries import format_ci


def beside_measured(published: LeaderboardRow, measured: list[LeaderboardRow]) -> str:
    """The measured value of the published row's variant and task under the same protocol
    (the scoring-mode key and shots its protocol prescribes), or what differs."""
    if published.unmapped:
        return f"not comparable: {published.unmapped}"
    mine = [r for r in measured if r.variant == published.variant and r.task == published.task]
    if not mine:
        return "not measured here"
    settings = ", ".join(sorted({f"{row.scoring_mode} {row.shots}-shot" for row in mine}))
    if published.expected_mode is None:
        return f"not comparable: published {published.protocol}; measured {settings}"
    mode, shots = published.expected_mode, published.expected_shots
    same = [row for row in mine if row.scoring_mode == mode and row.shots == shots]
    if not same:
        return (
            f"not comparable: published under {published.protocol} ({mode} {shots}-shot); "
            f"measured {settings}"
        )
    return f"same protocol: measured {format_ci(same[0])} (run {same[0].run_id})"
