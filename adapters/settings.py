"""`lvvx adapter run` configuration: a TOML file, overridden by ``LVVX_ADAPTER_*`` environment
variables, overridden by the command line — as the gateway's (`broker.gateway.settings`).

The bearer token is never in the file: it is in the file ``token_file`` names, or in
``$LVVX_API_TOKEN`` / the file ``$LVVX_API_TOKEN_FILE`` names (the client's own variables,
`broker.client`). There is no ``token`` setting, so a file holding one is refused.

Example (``adapter.toml``)::

    party = "dtv"
    gateway_url = "https://gateway.dtv.internal:8443"
    token_file = "secrets/dtv.token"
    tls_ca_file = "pki/gateway-ca.pem"   # mutual TLS: tls_cert_file, tls_key_file
    directory_file = "directory.bin"     # the network's parties and roles, as the gateway's
    anchor_file = "keys/anchor.public.json"
    network = "lvv"
    system_file = "exports/dtv.json"     # IND's, DT&V's exports; COA's facilities
    auto_deliver = true                  # IND, DT&V: answer an intake with the dossier

Errors in the file or the environment are one line with reason CONFIG. Relative paths in
the file are relative to the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError

from adapters._runtime import MAX_HANDLER_FAILURES, PAGE, POLL_WAIT_S
from broker.client import MAX_INBOX_PAGE, MAX_WAIT_S, Tls
from broker.errors import LocalError, validation_summary
from broker.models import PARTY_ID_PATTERN

ENV_PREFIX = "LVVX_ADAPTER_"

PATHS = ("token_file", "directory_file", "anchor_file", "system_file", "status_file",
         "tls_ca_file", "tls_cert_file", "tls_key_file")  # fmt: skip
"""The settings that are paths: relative ones in the file are the file's."""


class AdapterSettings(BaseModel):
    """Built by `load_adapter_settings` only (STYLE §8: configuration at the edge)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    party: str = Field(pattern=PARTY_ID_PATTERN, description="The back office's party id.")
    gateway_url: AnyHttpUrl = Field(description="The party's gateway's HTTP API.")
    token_file: Path | None = Field(
        None, description="File with the API token; else $LVVX_API_TOKEN(_FILE)."
    )
    directory_file: Path = Field(description="The signed key directory: parties and roles.")
    anchor_file: Path = Field(description="The pinned trust anchor (anchor.public.json).")
    network: str = Field(min_length=1, description="The network's name.")
    system_file: Path | None = Field(
        None, description="JSON list of the back office's records the adapter answers from: "
        "IND's and DT&V's case exports, COA's facilities.",
    )  # fmt: skip
    auto_deliver: bool = Field(False, description="IND, DT&V: deliver the dossier on intake.")
    status_file: Path | None = Field(
        None, description="Written after each page: counts and each case's step, no personal data."
    )
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_verify: bool = True
    poll_wait_s: float = Field(POLL_WAIT_S, gt=0, le=MAX_WAIT_S)
    page_size: int = Field(PAGE, ge=1, le=MAX_INBOX_PAGE)
    max_failures: int = Field(MAX_HANDLER_FAILURES, ge=1)

    def tls(self) -> Tls:
        return Tls(ca_file=self.tls_ca_file, cert_file=self.tls_cert_file,
                   key_file=self.tls_key_file, verify=self.tls_verify)  # fmt: skip


def _from_env() -> dict[str, Any]:
    """The ``LVVX_ADAPTER_*`` variables by setting name (in any case, as the gateway's)."""
    given = {k.upper(): v for k, v in os.environ.items()}
    return {
        name: given[ENV_PREFIX + name.upper()]
        for name in AdapterSettings.model_fields
        if ENV_PREFIX + name.upper() in given
    }


def _from_file(config_file: Path) -> dict[str, Any]:
    try:
        values = tomllib.loads(config_file.read_text())
    except FileNotFoundError:
        raise LocalError(f"no config file at {config_file}", reason="CONFIG") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LocalError(f"{config_file} is not readable TOML: {exc}", reason="CONFIG") from None
    base = config_file.parent
    for name in PATHS:
        if isinstance(values.get(name), str) and not Path(values[name]).is_absolute():
            values[name] = str(base / values[name])
    return values


def load_adapter_settings(config_file: Path | None = None, **given: Any) -> AdapterSettings:
    """Settings from ``given`` (the command line; None values are not given), else the
    environment, else ``config_file``; one line with reason CONFIG when wrong."""
    values = _from_file(config_file) if config_file is not None else {}
    values |= _from_env()
    values |= {name: value for name, value in given.items() if value is not None}
    where = str(config_file) if config_file is not None else "the environment"
    try:
        return AdapterSettings.model_validate(values)
    except ValidationError as exc:
        raise LocalError(f"{where}: {validation_summary(exc)}", reason="CONFIG") from None


__all__ = ["ENV_PREFIX", "AdapterSettings", "load_adapter_settings"]
