"""`broker.log_throttle`: a repeating condition logs one line per interval, with the count of the
lines held back — for our own lines (`Throttle`) and for a library's loggers and all their
children (`quieten`, `ThrottleFilter`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from broker import log_throttle
from broker.log_throttle import Throttle, ThrottleFilter, quieten


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Collects the formatted messages that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("lvvx.test.quiet")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_a_repeating_line_is_written_once_per_interval_with_the_count_held_back(
    lines: Lines,
) -> None:
    clock = Clock()
    quiet = Throttle(logging.getLogger("lvvx.test.quiet"), every_s=10, clock=clock)
    written = [quiet.warning("away", "lost its log: %s", n) for n in range(5)]
    assert written == [True, False, False, False, False]
    clock.now += 9.9
    assert not quiet.warning("away", "lost its log: %s", 5)
    clock.now += 0.1
    assert quiet.warning("away", "lost its log: %s", 6)
    clock.now += 10
    assert quiet.warning("away", "lost its log: %s", 7)
    assert lines.lines == [
        "lost its log: 0",
        "lost its log: 6 (and 5 more like it since the last line)",
        "lost its log: 7",
    ]


def test_conditions_are_counted_apart(lines: Lines) -> None:
    quiet = Throttle(logging.getLogger("lvvx.test.quiet"), every_s=10, clock=Clock())
    for _ in range(3):
        quiet.info(("refused", "BAD_SIGNATURE"), "refused: %s", "BAD_SIGNATURE")
        quiet.info(("refused", "EXPIRED"), "refused: %s", "EXPIRED")
    assert lines.lines == ["refused: BAD_SIGNATURE", "refused: EXPIRED"]


def test_the_conditions_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_throttle, "MAX_CONDITIONS", 3)
    window = log_throttle._Window(10, Clock())
    assert [window.admit(k) for k in "abcd"] == [0, 0, 0, 0]
    assert len(window._state) == 3  # "a", the oldest, forgotten: it may log again
    assert window.admit("a") == 0 and window.admit("d") is None


def test_quieten_throttles_the_children_of_a_named_logger() -> None:
    """A filter on ``aiokafka`` would not see ``aiokafka.conn``'s records: the filter goes
    on the handler, for the named loggers and their children only."""
    handler = Lines()
    quieten("lvvx.test.lib", handlers=[handler])
    quieten("lvvx.test.lib", handlers=[handler])  # once is enough
    assert sum(isinstance(f, ThrottleFilter) for f in handler.filters) == 1
    root = logging.getLogger("lvvx.test")
    root.addHandler(handler)
    try:
        for node in range(50):
            logging.getLogger("lvvx.test.lib.conn").error("Unable connect to node %s", node)
            logging.getLogger("lvvx.test.lib").error("Unable to update metadata")
            logging.getLogger("lvvx.test.libx").error("not a child: never held back")
        logging.getLogger("lvvx.test.mine").error("our own line")
    finally:
        root.removeHandler(handler)
    assert handler.lines.count("Unable connect to node 0") == 1
    assert handler.lines.count("Unable to update metadata") == 1
    assert handler.lines.count("not a child: never held back") == 50
    assert handler.lines[-1] == "our own line"
    assert len(handler.lines) == 53


def test_quieten_by_default_filters_what_reaches_the_root_logger_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    shared = quieten("lvvx.test.deep")
    try:
        for _ in range(20):
            logging.getLogger("lvvx.test.deep.a.b").warning("Heartbeat failed: %s", "retry")
    finally:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(shared)
    assert [r.getMessage() for r in caplog.records] == ["Heartbeat failed: retry"]


def test_the_filter_appends_the_count_held_back_to_the_next_line() -> None:
    clock = Clock()
    only = ThrottleFilter(every_s=10, names=["lib"], clock=clock)

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("lib.conn", logging.ERROR, __file__, 1, msg, args, None)

    assert only.filter(record("Unable connect to node %s", 1))
    assert not any(only.filter(record("Unable connect to node %s", n)) for n in range(2, 9))
    clock.now += 10
    last = record("Unable connect to node %s", 9)
    assert only.filter(last)
    assert last.getMessage() == "Unable connect to node 9 (and 7 more like it since the last line)"
    assert ThrottleFilter(names=["lib"]).covers("lib.a.b") and not ThrottleFilter(
        names=["lib"]
    ).covers("libx")
