"""`lvvx`: the command line of LVV Exchange. Each command group is a module of this package;
this one makes the root group, prints our errors as one line, and sets the umask."""

from __future__ import annotations

import os
import sys

import click

from broker import __version__
from broker.errors import LvvError
from broker.owner_only import PROCESS_UMASK
from cli._common import errors


class _Group(click.Group):
    """Prints our own errors as one clear line with their reason code, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LvvError as exc:
            errors.print(f"[red]error[/red] {exc}", highlight=False, soft_wrap=True)  # one line
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="lvvx")
def cli() -> None:
    """LVV Exchange: secure case exchange between the parties of the LVV network."""


def _register_commands() -> None:
    from cli.audit import audit
    from cli.cases import cases
    from cli.demo import demo
    from cli.directory import directory
    from cli.envelope import envelope, open_command, seal_command
    from cli.gateway import gateway
    from cli.keys import keys
    from cli.pki import pki
    from cli.schemas import schemas
    from cli.topics import topics

    commands = (schemas, demo, keys, directory, seal_command, open_command, envelope, pki, topics,
                gateway, audit, cases)  # fmt: skip
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
