"""`lvvx`, the command line of LVV Exchange: one module per command group (`cli.main` makes
the root group). It sits on top: it may use the library (`broker`), the adapters and the
demo; nothing imports it."""
