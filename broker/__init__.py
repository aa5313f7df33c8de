"""LVV Exchange: the broker core (codec, transports, and later crypto and gateways)."""

__version__ = "0.1.0"
