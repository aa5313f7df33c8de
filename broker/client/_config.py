"""The client's configuration from its edge: the bearer token (given, from a file, or from
the environment) and the TLS options, turned into what httpx takes."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import httpx

from broker.client._retry import RetryPolicy
from broker.errors import LocalError

if TYPE_CHECKING:
    from broker.client._tries import OnCall

TOKEN_ENV = "LVVX_API_TOKEN"
TOKEN_FILE_ENV = "LVVX_API_TOKEN_FILE"
"""The back office's own variables: not ``LVVX_GATEWAY_API_TOKEN``, which is the gateway's
setting (a back office and its gateway rarely share an environment)."""


def resolve_token(
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """The bearer token: ``token``, else the file ``token_file``, else ``$LVVX_API_TOKEN``,
    else the file ``$LVVX_API_TOKEN_FILE``. A file's trailing newline is not part of it."""
    if token is None and token_file is None:
        token = environ.get(TOKEN_ENV) or None
        token_file = environ.get(TOKEN_FILE_ENV) or None
    if token is None and token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise LocalError(f"cannot read the token file {token_file}: {exc.strerror}",
                             reason="NO_TOKEN") from exc  # fmt: skip
    if not token:
        raise LocalError(f"no API token: give token or token_file, or set {TOKEN_ENV} or "
                         f"{TOKEN_FILE_ENV}", reason="NO_TOKEN")  # fmt: skip
    return token


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS to the gateway: ``ca_file`` the CA bundle to trust (the system's if None);
    ``cert_file`` and ``key_file`` the back office's own certificate when the gateway asks
    for one (mutual TLS). ``verify=False`` is for a development gateway only."""

    ca_file: str | os.PathLike[str] | None = None
    cert_file: str | os.PathLike[str] | None = None
    key_file: str | os.PathLike[str] | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        if (self.cert_file is None) != (self.key_file is None):
            raise LocalError("cert_file and key_file go together", reason="TLS_CONFIG")
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


TIMEOUT_S = 30.0
"""A call's read and write timeout: the gateway's own Kafka send timeout is 30 s, and it
answers a send within that (acknowledged or an error), so a client rarely gives up first."""

CONNECT_TIMEOUT_S = 5.0
"""A gateway on the back office's network connects in milliseconds; no connection in 5 s
is a gateway that is down, and the call is retried (nothing was sent)."""

USER_AGENT = "lvvx-client/1"


class ClientOptions(TypedDict, total=False):
    """The options both clients take (all optional)."""

    token: str | None
    """The bearer token; else ``token_file``, ``$LVVX_API_TOKEN``, ``$LVVX_API_TOKEN_FILE``."""
    token_file: str | os.PathLike[str] | None
    timeout_s: float
    """Read and write timeout of a call (`TIMEOUT_S`); a send may give its own."""
    connect_timeout_s: float
    tls: Tls | None
    retry: RetryPolicy | None
    idempotency_keys: bool
    """True (the default): every send carries an idempotency key, so its retries never send
    twice. False only for a gateway from before them (its batch refuses the key): sends are
    then retried only when nothing was sent."""
    on_call: OnCall | None
    """Called after every try with its `CallRecord`: latency, errors, retries."""
    limits: httpx.Limits | None
    """httpx's connection pool limits."""


@dataclass(frozen=True, slots=True)
class Setup:
    """What a client makes of its options: httpx's keyword arguments (redirects are not
    followed: one could carry the token, and a message, elsewhere) and its own."""

    http: dict[str, object]
    retry: RetryPolicy
    keyed: bool
    on_call: OnCall | None

    @classmethod
    def of(cls, base_url: str, options: ClientOptions) -> Setup:
        token = resolve_token(options.get("token"), options.get("token_file"))
        http: dict[str, object] = {
            "base_url": base_url,
            "headers": {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            "timeout": httpx.Timeout(options.get("timeout_s", TIMEOUT_S),
                                     connect=options.get("connect_timeout_s", CONNECT_TIMEOUT_S)),
            "follow_redirects": False,
            "verify": (options.get("tls") or Tls()).context(),
        }  # fmt: skip
        if (limits := options.get("limits")) is not None:
            http["limits"] = limits
        return cls(http, options.get("retry") or RetryPolicy(),
                   options.get("idempotency_keys", True), options.get("on_call"))  # fmt: skip


__all__ = ["TOKEN_ENV", "TOKEN_FILE_ENV", "ClientOptions", "Setup", "Tls", "resolve_token"]
