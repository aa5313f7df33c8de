"""Durable work per batch, not per message: a polled batch of records is decided in one store
transaction, sends and acknowledgements that arrive together share one, and the back
office's reads never wait for a writer. Each commit is an fsync (synchronous=FULL), so the
commits counted here are the fsyncs a gateway pays."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker.gateway import Gateway
from broker.gateway._store import GatewayStore, SentRow
from broker.models import DossierDelivered, PartyRole
from broker.topics import inbox
from tests.crypto_net import CONTENT_KEY, NOW, A
from tests.embedded_gateways import EmbeddedNetwork
from tests.support import eventually, example_of

IND = A[PartyRole.IND]
MUNI = A[PartyRole.MUNICIPALITY]


@contextmanager
def counted_commits(store: GatewayStore) -> Iterator[list[str]]:
    """The COMMITs the store's writing connection runs meanwhile."""
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    try:
        yield commits
    finally:
        store._db.set_trace_callback(None)


def row() -> SentRow:
    return SentRow(uuid.uuid4(), "DossierDelivered", uuid.uuid4(), (MUNI,), NOW)


# --- the store -------------------------------------------------------------------------------


def test_a_batch_is_one_commit_and_a_failed_write_in_it_is_undone_alone(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "g.db", content_key=CONTENT_KEY)
    kept, undone = row(), row()
    with counted_commits(store) as commits, store.batch():
        store.record_sent_many([kept])
        with pytest.raises(RuntimeError), store.savepoint():
            store.record_sent_many([undone])
            raise RuntimeError("a fault after the write")
        store.record_sent_many([row(), row()])
    assert commits == ["COMMIT"]
    assert store.sent_status(kept.message_id) is not None
    assert store.sent_status(undone.message_id) is None
    assert store.counts()["sent"] == 3


def test_a_batch_that_fails_stores_none_of_it(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "g.db", content_key=CONTENT_KEY)
    with pytest.raises(RuntimeError), store.batch():
        store.record_sent_many([row()])
        raise RuntimeError("the gateway failed mid-batch")
    assert store.counts()["sent"] == 0
    store.record_sent_many([row()])  # and the store writes on
    assert store.counts()["sent"] == 1


def test_a_write_after_sqlite_rolled_the_batch_back_is_refused_not_committed_alone(
    tmp_path: Path,
) -> None:
    """An I/O error can make SQLite roll the whole transaction back; a later write of the
    batch must not then run (and commit) on its own, outside it."""
    store = GatewayStore(tmp_path / "g.db", content_key=CONTENT_KEY)
    with pytest.raises(sqlite3.OperationalError), store.batch():
        store.record_sent_many([row()])
        store._db.execute("ROLLBACK")  # what SQLite does itself on some I/O errors
        store.record_sent_many([row()])
    assert store.counts()["sent"] == 0


def test_the_back_office_reads_while_a_batch_is_being_written(tmp_path: Path) -> None:
    """Reads use a connection of their own: they see the last commit, and never wait for a
    writer (they run on the event loop)."""
    store = GatewayStore(tmp_path / "g.db", content_key=CONTENT_KEY)
    store.record_sent_many([row()])
    in_batch, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.batch():
            store.record_sent_many([row()])
            in_batch.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert in_batch.wait(10)
        answer: list[int] = []
        reader = threading.Thread(target=lambda: answer.append(store.counts()["sent"]))
        reader.start()
        reader.join(5)
        assert answer == [1], "the read waited for the writer, or saw its uncommitted row"
    finally:
        release.set()
        thread.join(10)
    assert store.counts()["sent"] == 2


def test_acks_together_are_one_transaction_each_with_its_own_outcome(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "g.db", content_key=CONTENT_KEY)
    with counted_commits(store) as commits:
        outcomes = store.ack_many([(uuid.uuid4(), None), (uuid.uuid4(), IND)], NOW)
    assert outcomes == [False, False]
    assert commits == ["COMMIT"]


# --- the gateway -----------------------------------------------------------------------------


def dossier() -> DossierDelivered:
    return example_of(DossierDelivered)


async def test_a_polled_batch_of_records_costs_two_commits_not_one_per_record(
    lvv: EmbeddedNetwork,
) -> None:
    """20 deliveries in one poll: their decisions in one transaction, then one marking them
    visible after their follow-ups were published (it was a commit per record, plus one)."""
    ind = await lvv.gateway(IND)
    muni = await lvv.gateway(MUNI)
    sent = [await ind.send(dossier(), [MUNI]) for _ in range(20)]
    assert len(await lvv.records(inbox(MUNI))) == 20
    with counted_commits(muni.store) as commits:
        lvv.run(muni)
        await eventually(lambda: len(muni.store.inbox(limit=50)) == 20, "20 deliveries")
        await lvv.halt(muni)
    assert sorted(i.message_id for i in muni.store.inbox(limit=50)) == sorted(sent)
    assert len(commits) == 2


async def test_sends_that_arrive_together_note_their_messages_in_one_transaction(
    lvv: EmbeddedNetwork,
) -> None:
    ind = await lvv.gateway(IND)
    await lvv.gateway(MUNI)
    with counted_commits(ind.store) as commits:
        sent = await asyncio.gather(*(ind.send(dossier(), [MUNI]) for _ in range(10)))
    assert len(set(sent)) == 10
    assert len(await lvv.records(inbox(MUNI))) == 10
    assert all(ind.store.sent_status(m) is not None for m in sent)
    assert len(commits) == 1


async def test_acks_that_arrive_together_are_written_in_one_transaction(
    lvv: EmbeddedNetwork,
) -> None:
    ind = await lvv.gateway(IND)
    muni: Gateway = await lvv.gateway(MUNI)
    sent = [await ind.send(dossier(), [MUNI]) for _ in range(5)]
    lvv.run(muni)
    await eventually(lambda: len(muni.store.inbox(limit=10)) == 5, "5 deliveries")
    await lvv.halt(muni)
    with counted_commits(muni.store) as commits:
        acked = await asyncio.gather(*(muni.ack(m) for m in [*sent, uuid.uuid4()]))
    assert acked == [True] * 5 + [False]
    assert muni.store.inbox(limit=10) == []
    assert len(commits) == 1
