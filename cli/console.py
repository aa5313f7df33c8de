"""`lvvx console`: DT&V's web console — the network, the cases, a case's timeline, a
message's inclusion proof — served from the live audit follower's latest verified state.

It reads what `lvvx audit follow` reads (the same options) and needs DT&V's token: from
``LVVX_CONSOLE_TOKEN``, else ``--token-file`` (default: the demo network's
``DATA/secrets/<DT&V>.token``, DT&V's gateway token).
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta
from pathlib import Path

import click
from rich.markup import escape

from broker.crypto import AnchorKey, Directory, KeyStore
from broker.errors import LocalError
from cli._common import FILE, console, quiet_kafka_logs
from cli._stream import (
    followed_directory,
    run_info,
    stream_directory,
    stream_options,
)

TOKEN_ENV = "LVVX_CONSOLE_TOKEN"
STOP_BUDGET_S = 0.3
"""What the directory feed and the transport get to close after the console stopped."""


@click.command("console")
@stream_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen on this address.")
@click.option("--port", type=int, default=8090, show_default=True, help="Serve the console here.")
@click.option("--token-file", type=FILE,
              help=f"DT&V's token [default: ${TOKEN_ENV}, else DATA/secrets/<DT&V's party>.token].")  # fmt: skip
@click.option("--grace", default=60.0, show_default=True, help="Seconds a message may take to arrive.")  # fmt: skip
def console_command(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
                    anchor_folder: Path | None, pki_folder: Path | None, identity: str, host: str,
                    port: int, token_file: Path | None, grace: float) -> None:  # fmt: skip
    """Serve DT&V's web console: the audit stream followed live, from its metadata only. Ctrl-C stops."""
    from broker.audit import audit_topics
    from broker.console import run_console
    from broker.transport import open_transport

    kafka, prefix, tls = run_info(data, kafka, prefix, pki_folder)
    first = stream_directory(data, directory_file, anchor_folder)  # a bad file fails before I/O
    token = _token(data, token_file, first)
    anchor = AnchorKey.from_record(KeyStore(anchor_folder or data / "keys").anchor_public())
    quiet_kafka_logs()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        transport = open_transport(kafka, data, tls=tls, identity=identity)
        try:
            in_use, following = await followed_directory(transport, data, directory_file, anchor_folder,
                                                         prefix, anchor=anchor, stop=stop, party="console")  # fmt: skip
            console.print(f"console on http://{escape(host)}:{port}/ (DT&V's token); "
                          f"following {len(in_use().parties)} audit topics; Ctrl-C stops", highlight=False)  # fmt: skip
            await run_console(transport, lambda d: audit_topics(d, prefix), in_use,
                              token=token, stop=stop, host=host, port=port,
                              grace=timedelta(seconds=grace))  # fmt: skip
            stop.set()
            await asyncio.wait([following], timeout=STOP_BUDGET_S)
        finally:
            await asyncio.wait([asyncio.ensure_future(transport.close())], timeout=STOP_BUDGET_S)

    asyncio.run(main())


def _token(data: Path, token_file: Path | None, directory: Directory) -> str:
    """DT&V's token: the environment's, else the file's (given, or the demo network's)."""
    from broker.models import PartyRole

    if os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip()
    if token_file is None:
        dtv = sorted(p for p, e in directory.parties.items() if e.role is PartyRole.DTV)
        token_file = data / "secrets" / f"{dtv[0] if dtv else 'dtv'}.token"
    if not token_file.is_file() or not token_file.read_text().strip():
        raise LocalError(f"no token for the console: set {TOKEN_ENV} or give --token-file "
                         f"({token_file} does not hold one)", reason="NO_TOKEN")  # fmt: skip
    return token_file.read_text().strip()
