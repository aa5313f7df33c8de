"""Logging a repeating condition without flooding: at most one line per condition per
`QUIET_INTERVAL_S`, the lines held back counted into the next one.

A broker outage or a stream of hostile records repeats the same line many times a second;
an operator needs to know that it happens and how often, not every instance. Two forms:

- `Throttle` for our own code: ``throttle.warning(key, "refused %s", reason)``, where
  ``key`` names the condition (a reason code, say) — never message content;
- `ThrottleFilter`, a `logging.Filter` for a foreign library's loggers (aiokafka), keyed by
  the record's logger, level and unformatted message; `quieten` installs it.

A filter on a logger sees only the records logged to that very logger, not those its
children pass up to its handlers (``aiokafka.conn`` is not filtered by a filter on
``aiokafka``). So `quieten` puts the filter where every record passes — on the handlers —
and lets it touch only records of the named loggers and their children.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable

QUIET_INTERVAL_S = 10.0
"""One line per condition per this long: an outage stays visible without drowning the log."""

MAX_CONDITIONS = 1024
"""Conditions remembered at most; past that the oldest are forgotten (bounded memory even if
keys vary without limit)."""


class _Window:
    """When each condition last logged and how many were held back since: thread-safe."""

    def __init__(self, every_s: float, clock: Callable[[], float]) -> None:
        self._every_s = every_s
        self._clock = clock
        self._state: dict[Hashable, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> int | None:
        """None if ``key`` logged within the interval (it is counted); otherwise how many
        lines of it were held back since it last logged."""
        now = self._clock()
        with self._lock:
            last, held = self._state.get(key, (float("-inf"), 0))
            if now - last < self._every_s:
                self._state[key] = (last, held + 1)
                return None
            if key not in self._state and len(self._state) >= MAX_CONDITIONS:
                del self._state[next(iter(self._state))]
            self._state.pop(key, None)
            self._state[key] = (now, 0)
            return held


class Throttle:
    """Logs through ``logger``, one line per key per interval, with the count held back."""

    def __init__(self, logger: logging.Logger, *, every_s: float = QUIET_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._logger = logger
        self._window = _Window(every_s, clock)

    def log(self, level: int, key: Hashable, msg: str, *args: object) -> bool:
        """Log unless ``key`` logged within the interval; True if a line was written."""
        held = self._window.admit(key)
        if held is None:
            return False
        if held:
            msg, args = f"{msg} (and %d more like it since the last line)", (*args, held)
        self._logger.log(level, msg, *args)
        return True

    def warning(self, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def info(self, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, key, msg, *args)


_DECIDED = "_lvvx_quiet_{}"
"""Set on a record once a `ThrottleFilter` (its id in the name) decided about it: the same
answer for each handler the filter is on."""


class ThrottleFilter(logging.Filter):
    """For a library's loggers: lets one record per (logger, level, message template)
    through per interval, with the count held back appended to it. With ``names``, only
    records of those loggers and their children are throttled; the rest pass untouched."""

    def __init__(self, *, every_s: float = QUIET_INTERVAL_S, names: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        super().__init__()
        self._window = _Window(every_s, clock)
        self.names = frozenset(names)

    def covers(self, logger_name: str) -> bool:
        """Whether records of ``logger_name`` are throttled (all, without ``names``)."""
        if not self.names:
            return True
        parts = logger_name.split(".")
        return any(".".join(parts[:n]) in self.names for n in range(1, len(parts) + 1))

    def filter(self, record: logging.LogRecord) -> bool:
        # one decision per record, however many handlers share this filter
        mark = _DECIDED.format(id(self))
        decided: bool | None = getattr(record, mark, None)
        if decided is not None:
            return decided
        admitted = self._admit(record)
        setattr(record, mark, admitted)
        return admitted

    def _admit(self, record: logging.LogRecord) -> bool:
        if not self.covers(record.name):
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        held = self._window.admit((record.name, record.levelno, template))
        if held is None:
            return False
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it since the last line)"
            record.args = None
        return True


def quieten(
    *logger_names: str, every_s: float = QUIET_INTERVAL_S,
    handlers: Iterable[logging.Handler] | None = None,
) -> ThrottleFilter:  # fmt: skip
    """Throttle the records of the named loggers and of their children, on ``handlers`` (by
    default the root logger's: call it after logging is configured). Idempotent: a handler
    that has a `ThrottleFilter` for these names already is left as it is. Returns the filter."""
    shared = ThrottleFilter(every_s=every_s, names=logger_names)
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        if not any(
            isinstance(f, ThrottleFilter) and shared.names <= f.names for f in handler.filters
        ):
            handler.addFilter(shared)
    return shared
