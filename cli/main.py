"""`lvvx`: the command line of LVV Exchange. Each command group is a module of this package;
this one makes the root group, prints every error as one line (`cli._errors`), and sets the
umask."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from broker import __version__
from broker.owner_only import PROCESS_UMASK
from cli._common import Group
from cli._errors import report

EPILOG = """\b
Exit codes: 0 done; 1 a check found problems (audit verify, audit check-proof, a demo
that failed); 3 `lvvx open` refused the envelope; 2 an error: one line on stderr,
  error [REASON] message
with a reason code (USAGE for a command line click refuses, INTERNAL for a bug in lvvx);
130 stopped by Ctrl-C. LVVX_DEBUG=1 prints the traceback before the error line."""


class _Root(Group):
    """The root group: whatever goes wrong, one line on stderr, never a traceback."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        if not standalone_mode:  # a caller that handles the exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `lvvx`, `lvvx audit`: not an error
            click.echo(exc.ctx.get_help())
            code = 0
        except Exception as exc:  # click.Abort (Ctrl-C) included
            sys.exit(report(exc))
        sys.exit(code if isinstance(code, int) else 0)  # --help and --version give theirs


@click.group(cls=_Root, epilog=EPILOG)
@click.version_option(__version__, prog_name="lvvx")
def cli() -> None:
    """LVV Exchange: secure case exchange between the parties of the LVV network."""


def _register_commands() -> None:
    from cli.adapter import adapter
    from cli.audit import audit
    from cli.cases import cases
    from cli.console import console_command
    from cli.demo import demo
    from cli.directory import directory
    from cli.envelope import envelope, open_command, seal_command
    from cli.gateway import gateway
    from cli.keys import keys
    from cli.network import network
    from cli.pki import pki
    from cli.schemas import schemas
    from cli.topics import topics

    commands = (schemas, demo, keys, directory, network, seal_command, open_command, envelope, pki,
                topics, gateway, adapter, audit, cases, console_command)  # fmt: skip
    for command in commands:
        cli.add_command(command)


_register_commands()


def main() -> None:
    # everything this process makes — stores, logs, keys, configurations — is for the
    # party's operator only, also what a library writes without asking for a mode
    os.umask(PROCESS_UMASK)
    cli(prog_name="lvvx")


if __name__ == "__main__":
    main()
