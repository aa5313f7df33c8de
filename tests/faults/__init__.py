"""Reliability under faults (issue 8), Jepsen-style: inject a fault while traffic flows,
record every operation in a history (`history`), then check the history.

`python -m tests.faults` (`make test-faults`) runs the fault scenarios on a three-broker
secured cluster of its own; `tests/faults/test_history.py` tests the checker without Kafka.
"""
