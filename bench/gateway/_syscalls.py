"""Counting a gateway process's fsyncs: strace, if the machine has it, runs the gateway as
its child and logs each fsync/fdatasync with its time; the calls that fall in a phase are
counted afterwards.

With ``--seccomp-bpf`` strace stops the process only at the calls it traces, so the
gateway runs at full speed between fsyncs (attaching with ``-p`` would stop it at every
system call, and the figures would be strace's). Without strace the fsyncs are "not
measured"; /proc/PID/io's write counts (`read_io`) are there either way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TRACED = ("fsync", "fdatasync")

_CALL = re.compile(rf"^\d+\s+(\d+\.\d+)\s+({'|'.join(TRACED)})\(")
"""A traced call as strace -f -ttt logs it: pid, wall-clock time, name and arguments (a call
cut by another thread's line ends in ``<unfinished ...>``; its ``resumed`` half is not matched)."""


def strace_command() -> list[str] | None:
    """The strace command line to put before the gateway's, without the output file; None
    if strace is missing or cannot trace here (no ptrace in a container, an old kernel)."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    command = [strace, "-f", "--seccomp-bpf", "-qq", "-e", "signal=none",
               "-e", f"trace={','.join(TRACED)}", "-ttt"]  # fmt: skip
    probe = subprocess.run([*command, "-o", "/dev/null", "--", "true"], capture_output=True)
    return command if probe.returncode == 0 else None


def traced(command: list[str], log: Path) -> list[str]:
    """``command`` writing its log to ``log``, ending in ``--`` (the gateway's command follows)."""
    return [*command, "-o", str(log), "--"]


def call_times(log: Path) -> list[float]:
    """Wall-clock times (time.time) of the traced calls in a strace log."""
    times = []
    with log.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if match := _CALL.match(line):
                times.append(float(match.group(1)))
    return times


def count_between(times: list[float], start: float, end: float) -> int:
    return sum(start <= t < end for t in times)


@dataclass(frozen=True, slots=True)
class Io:
    """A process's write counters (/proc/PID/io): system calls and bytes to storage."""

    write_calls: int
    """``syscw``: write-like system calls (write, pwrite, writev...)."""
    storage_bytes: int
    """``write_bytes``: bytes the process caused to be sent to the storage layer."""


def read_io(pid: int) -> Io | None:
    """/proc/PID/io of ``pid``; None once it is gone or if the kernel does not show it."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return None
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return Io(int(fields["syscw"]), int(fields["write_bytes"]))
