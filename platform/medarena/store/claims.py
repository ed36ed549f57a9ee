"""Claims on the cells of an evaluation sweep (`sweep_claims`): who runs which cell now.

A worker claims a cell by inserting a row keyed by the cell's run key (the primary key makes
that atomic on SQLite and PostgreSQL alike), renews its claims while it works, and deletes the
row when the cell is done (or keeps it, expired, with the error when the cell failed). A claim
is taken over only when it has expired (its holder stopped renewing: a killed node) or when its
holder is known dead (a process of this host that no longer exists). Times are the workers'
UTC clocks: a lease is minutes long, far beyond the skew of clocks kept by NTP.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medarena.store.models import SweepClaimRow, utcnow


@dataclass(frozen=True)
class Holder:
    """A worker process that claims cells."""

    id: str  # a uuid, new per worker
    host: str
    pid: int
    slurm_job: str | None = None


@dataclass(frozen=True)
class Claim:
    run_key: str
    sweep: str
    cell: str
    holder: Holder
    claimed_at: datetime
    expires_at: datetime
    error: str | None

    def live(self, now: datetime | None = None) -> bool:
        """Held by a worker that is still renewing it (and not dead on this host)."""
        return self.error is None and self.expires_at > (now or utcnow()) and not _dead(self)


def _dead(claim: Claim) -> bool:
    """The holder is a process of this host that no longer exists."""
    if claim.holder.host != socket.gethostname():
        return False
    try:
        os.kill(claim.holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, another user's
        return False
    return False


def _claim(row: SweepClaimRow) -> Claim:
    holder = Holder(row.holder, row.host, row.pid, row.slurm_job)
    return Claim(
        row.run_key, row.sweep, row.cell, holder, row.claimed_at, row.expires_at, row.error
    )


class SweepClaims:
    """The Store's claim methods (mixed into medarena.store.Store)."""

    _session: Callable[[], Session]  # StoreReader's

    def claim_cell(
        self, run_key: str, *, sweep: str, cell: str, holder: Holder, lease_s: float
    ) -> bool:
        """Claim the cell for `holder`; False when another live holder has it."""
        now = utcnow()
        values = dict(
            sweep=sweep,
            cell=cell[:300],
            holder=holder.id,
            host=holder.host,
            pid=holder.pid,
            slurm_job=holder.slurm_job,
            claimed_at=now,
            expires_at=now + timedelta(seconds=lease_s),
            error=None,
        )
        try:
            with self._session() as session:
                session.add(SweepClaimRow(run_key=run_key, **values))
                session.flush()
            return True
        except IntegrityError:
            pass
        with self._session() as session:
            row = session.get(SweepClaimRow, run_key)
            if row is None:  # released in between: try again from the start
                return self.claim_cell(
                    run_key, sweep=sweep, cell=cell, holder=holder, lease_s=lease_s
                )
            found = _claim(row)
            if found.holder.id == holder.id:
                return True
            if found.live(now):
                return False
            # take it over only if nobody else did since we read it (compare and swap)
            taken = session.execute(
                update(SweepClaimRow)
                .where(
                    SweepClaimRow.run_key == run_key,
                    SweepClaimRow.holder == found.holder.id,
                    SweepClaimRow.expires_at == found.expires_at,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return taken.rowcount == 1

    def renew_claims(self, holder_id: str, lease_s: float) -> int:
        """Extend every live claim of the holder; returns how many."""
        now = utcnow()
        with self._session() as session:
            renewed = session.execute(
                update(SweepClaimRow)
                .where(SweepClaimRow.holder == holder_id, SweepClaimRow.error.is_(None))
                .values(expires_at=now + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
            return renewed.rowcount

    def release_claim(self, run_key: str, holder_id: str, *, error: str | None = None) -> None:
        """Let go of the cell: the row goes, or, with `error`, stays expired with the error
        (so `sweep status` shows the failure until a later claim takes the cell)."""
        mine = (SweepClaimRow.run_key == run_key, SweepClaimRow.holder == holder_id)
        with self._session() as session:
            if error is None:
                session.execute(delete(SweepClaimRow).where(*mine))
            else:
                session.execute(
                    update(SweepClaimRow)
                    .where(*mine)
                    .values(error=error, expires_at=utcnow())
                    .execution_options(synchronize_session=False)
                )

    def claims(self, run_keys: list[str]) -> dict[str, Claim]:
        """The claims on these cells, by run key."""
        found: dict[str, Claim] = {}
        with self._session() as session:
            for start in range(0, len(run_keys), 500):  # stay under bound-parameter limits
                chunk = run_keys[start : start + 500]
                rows = session.scalars(
                    select(SweepClaimRow).where(SweepClaimRow.run_key.in_(chunk))
                )
                found.update((row.run_key, _claim(row)) for row in rows)
        return found

    def sweep_claims(self) -> list[Claim]:
        """Every claim held or failed, by sweep and cell (what the dashboard shows of sweeps)."""
        with self._session() as session:
            rows = session.scalars(
                select(SweepClaimRow).order_by(SweepClaimRow.sweep, SweepClaimRow.cell)
            )
            return [_claim(row) for row in rows]
