"""Replay guards: an accepted message id is refused a second time for as long as its envelope
could be accepted, may be used again once that time has passed, and — for the SQLite guard —
stays refused across a restart and between two guards on one file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.errors import ReplayDetected
from broker.replay import MemoryReplayGuard, ReplayGuard, SqliteReplayGuard

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
MS = timedelta(milliseconds=1)
SENDER, OTHER = "ind", "gemeente-utrecht"


@pytest.fixture(params=["memory", "sqlite"])
def guard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReplayGuard]:
    if request.param == "memory":
        yield MemoryReplayGuard()
        return
    sqlite = SqliteReplayGuard(tmp_path / "replay.db")
    yield sqlite
    sqlite.close()


def test_second_claim_of_a_message_id_is_a_replay(guard: ReplayGuard) -> None:
    message_id = uuid.uuid4()
    guard.claim(SENDER, message_id, NOW + WEEK, NOW)
    with pytest.raises(ReplayDetected, match=str(message_id)):
        guard.claim(SENDER, message_id, NOW + WEEK, NOW + timedelta(minutes=5))


def test_the_same_id_from_another_sender_is_no_replay(guard: ReplayGuard) -> None:
    """Ids are the sender's: a co-recipient that saw an id cannot burn it for its sender."""
    message_id = uuid.uuid4()
    guard.claim(OTHER, message_id, NOW + WEEK, NOW)  # the other party used the id first
    guard.claim(SENDER, message_id, NOW + WEEK, NOW)  # the real message still passes
    with pytest.raises(ReplayDetected):
        guard.claim(SENDER, message_id, NOW + WEEK, NOW)


def test_different_message_ids_are_all_accepted(guard: ReplayGuard) -> None:
    for _ in range(50):
        guard.claim(SENDER, uuid.uuid4(), NOW + WEEK, NOW)


def test_id_is_still_a_replay_at_its_keep_until_time(guard: ReplayGuard) -> None:
    message_id = uuid.uuid4()
    guard.claim(SENDER, message_id, NOW + WEEK, NOW)
    with pytest.raises(ReplayDetected):
        guard.claim(SENDER, message_id, NOW + 2 * WEEK, NOW + WEEK)


def test_id_may_be_claimed_again_after_keep_until_has_passed(guard: ReplayGuard) -> None:
    message_id = uuid.uuid4()
    guard.claim(SENDER, message_id, NOW + WEEK, NOW)
    later = NOW + WEEK + MS
    guard.claim(SENDER, message_id, later + WEEK, later)
    # and the new claim is remembered for its own window
    with pytest.raises(ReplayDetected):
        guard.claim(SENDER, message_id, later + 2 * WEEK, later + timedelta(days=1))


def test_sqlite_guard_remembers_claims_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    message_id = uuid.uuid4()
    before = SqliteReplayGuard(path)
    before.claim(SENDER, message_id, NOW + WEEK, NOW)
    before.close()

    after = SqliteReplayGuard(path)  # the gateway restarted
    try:
        with pytest.raises(ReplayDetected):
            after.claim(SENDER, message_id, NOW + WEEK, NOW + timedelta(hours=1))
        after.claim(SENDER, uuid.uuid4(), NOW + WEEK, NOW + timedelta(hours=1))
    finally:
        after.close()


def test_two_sqlite_guards_on_one_file_see_each_others_claims(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    first, second = SqliteReplayGuard(path), SqliteReplayGuard(path)
    try:
        a, b = uuid.uuid4(), uuid.uuid4()
        first.claim(SENDER, a, NOW + WEEK, NOW)
        second.claim(SENDER, b, NOW + WEEK, NOW)
        with pytest.raises(ReplayDetected):
            second.claim(SENDER, a, NOW + WEEK, NOW)
        with pytest.raises(ReplayDetected):
            first.claim(SENDER, b, NOW + WEEK, NOW)
    finally:
        first.close()
        second.close()


def test_sqlite_guard_forgets_expired_ids_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    message_id = uuid.uuid4()
    before = SqliteReplayGuard(path)
    before.claim(SENDER, message_id, NOW + WEEK, NOW)
    before.close()

    after = SqliteReplayGuard(path)
    try:
        later = NOW + WEEK + MS
        after.claim(SENDER, message_id, later + WEEK, later)
    finally:
        after.close()
