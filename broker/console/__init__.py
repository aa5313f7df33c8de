"""DT&V's web console (`lvvx console`): the live audit follower's latest verified state as
server-rendered pages — the network, the cases, one case's timeline, a message's inclusion
proof — built from audit metadata only."""

from broker.console._app import NO_PERSONAL_DATA, create_console_app, session_value
from broker.console._serve import run_console
from broker.console._state import CaseFilter, ConsoleState

__all__ = [
    "NO_PERSONAL_DATA",
    "CaseFilter",
    "ConsoleState",
    "create_console_app",
    "run_console",
    "session_value",
]
