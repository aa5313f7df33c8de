"""Gateway configuration: a TOML file, overridden by ``LVVX_GATEWAY_*`` environment variables.

Only the service edge builds these settings (STYLE §8); the gateway core takes explicit
arguments. Secrets never come from the TOML file itself: a configuration file is copied,
versioned and shown around, and a secret in it leaks with it. The key passphrase comes from
``LVVX_KEY_PASSPHRASE`` or the file ``LVVX_KEY_PASSPHRASE_FILE`` names; the back office's API
token from ``LVVX_GATEWAY_API_TOKEN`` or the file ``api_token_file`` names; the webhook's
signing secret from ``LVVX_GATEWAY_WEBHOOK_SECRET`` or ``webhook_secret_file``.
`load_settings` refuses a file that holds one of them (`SECRET_SETTINGS`).

Example (``gateway.toml``)::

    party = "gemeente-utrecht"
    keys_dir = "keys"
    directory_file = "directory.bin"
    anchor_file = "keys/anchor.public.json"
    network = "lvv"                       # required: a directory of another network is refused
    data_dir = "state/gemeente-utrecht"
    transport = "kafka"
    api_token_file = "secrets/utrecht.token"        # or LVVX_GATEWAY_API_TOKEN
    webhook_url = "https://backoffice.utrecht.internal/lvv/inbox"
    webhook_secret_file = "secrets/utrecht.webhook"  # or LVVX_GATEWAY_WEBHOOK_SECRET

    [kafka]
    bootstrap_servers = "127.0.0.1:9093"
    security_protocol = "SSL"             # mutual TLS 1.3 with the party's certificate
    ssl_cafile = "pki/ca.pem"
    ssl_certfile = "pki/gemeente-utrecht.crt"
    ssl_keyfile = "pki/gemeente-utrecht.key"

Errors in the file or the environment are one line with reason CONFIG.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from broker.errors import LocalError, validation_summary
from broker.models import PARTY_ID_PATTERN
from broker.topics import DEFAULT_PREFIX
from broker.transport.kafka import KafkaOptions

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body the HTTP API reads: a big dossier as JSON is well under this."""

ENV_PREFIX = "LVVX_GATEWAY_"

SECRET_SETTINGS = {"api_token": "api_token_file", "webhook_secret": "webhook_secret_file"}
"""Settings that are secrets, each with the setting naming the file that may hold it: taken
from the environment (``LVVX_GATEWAY_<NAME>``) or that file, refused in the TOML file."""

MIN_WEBHOOK_SECRET_CHARS = 32
"""A signed webhook request lets anyone who sees it try secrets offline; 32 random
characters are far beyond that."""


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    party: str = Field(pattern=PARTY_ID_PATTERN, description="This gateway's party id.")
    keys_dir: Path = Field(description="Folder with the party's key files (`lvvx keys init`).")
    directory_file: Path = Field(description="The signed key directory (`lvvx directory build`).")
    anchor_file: Path = Field(
        description="The pinned trust anchor public key (anchor.public.json)."
    )
    network: str = Field(
        min_length=1,
        description="The network's name (`lvvx directory build --network`); a directory of "
        "another network is refused.",
    )
    data_dir: Path = Field(description="Where the gateway keeps its state (inbox, replay guard).")
    transport: Literal["embedded", "kafka"] = "embedded"
    embedded_log: Path | None = Field(
        None, description="The embedded log file shared by the network."
    )
    kafka: KafkaOptions = KafkaOptions()
    topic_prefix: str = DEFAULT_PREFIX
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    api_token: SecretStr | None = Field(
        None, description="Bearer token of the back office: LVVX_GATEWAY_API_TOKEN only."
    )
    api_token_file: Path | None = Field(None, description="File holding the bearer token.")
    webhook_url: AnyHttpUrl | None = Field(None, description="POST each delivered message here.")
    webhook_secret: SecretStr | None = Field(
        None, description="Key the webhook's requests are signed with: "
        "LVVX_GATEWAY_WEBHOOK_SECRET only.",
    )  # fmt: skip
    webhook_secret_file: Path | None = Field(None, description="File holding the webhook key.")
    webhook_allow_insecure_http: bool = Field(
        False, description="Allow a plain http:// webhook to a host other than loopback."
    )
    receipt_timeout_s: float = Field(300.0, gt=0)
    envelope_format: Literal[2, 3] = Field(
        3, description="Envelope format sealed: 3 carries the trace context; 2 until every "
        "party this one sends to opens format 3 (docs/ENVELOPE.md §9).",
    )  # fmt: skip
    max_body_bytes: int = Field(MAX_BODY_BYTES, gt=0)

    @model_validator(mode="after")
    def _webhook_rules(self) -> Self:
        """Delivered messages are personal data: they go to the back office over TLS, or
        over plain http only on this machine, unless the operator says otherwise; and never
        unsigned."""
        url = self.webhook_url
        if url is None:
            return self
        insecure = url.scheme == "http" and not _is_loopback(url.host or "")
        if insecure and not self.webhook_allow_insecure_http:
            raise ValueError(
                f"webhook_url {url} is plain http to {url.host}: use https, a loopback "
                "address, or set webhook_allow_insecure_http = true"
            )
        if self.webhook_secret is None and self.webhook_secret_file is None:
            raise ValueError(
                "webhook_url needs a signing secret: set LVVX_GATEWAY_WEBHOOK_SECRET or "
                "webhook_secret_file"
            )
        return self

    def token(self) -> str:
        """The back office's bearer token; a gateway without one does not start."""
        return _secret(self.api_token, self.api_token_file, "api_token")

    def webhook_key(self) -> str:
        """The key the webhook's requests are signed with; a gateway with a webhook and
        without a usable key does not start."""
        key = _secret(self.webhook_secret, self.webhook_secret_file, "webhook_secret")
        if len(key) < MIN_WEBHOOK_SECRET_CHARS:
            raise LocalError(
                f"the webhook secret must have at least {MIN_WEBHOOK_SECRET_CHARS} characters",
                reason="CONFIG",
            )
        return key


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: a request that never leaves this machine."""
    name = host.removeprefix("[").removesuffix("]").removesuffix(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _secret(value: SecretStr | None, file: Path | None, name: str) -> str:
    """The secret ``name`` from the environment (already in ``value``) or from ``file``."""
    env, file_setting = f"{ENV_PREFIX}{name.upper()}", SECRET_SETTINGS[name]
    if value is not None and value.get_secret_value().strip():
        return value.get_secret_value().strip()
    if file is not None:
        try:
            secret = file.read_text().strip()
        except OSError as exc:
            raise LocalError(
                f"cannot read {file_setting}: {exc.strerror}", reason="CONFIG"
            ) from exc
        if secret:
            return secret
        raise LocalError(f"{file_setting} {file} is empty", reason="CONFIG")
    raise LocalError(f"no {name}: set {env} or {file_setting}", reason="CONFIG")


def load_settings(config_file: Path | None = None) -> GatewaySettings:
    """Settings from ``config_file`` (TOML), with the environment taking precedence;
    refused with one line (reason CONFIG) when incomplete, invalid, or holding a secret."""

    class FromFile(GatewaySettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
            if config_file is not None:
                sources += (TomlConfigSettingsSource(settings_cls, toml_file=config_file),)
            return sources

    where = str(config_file) if config_file is not None else "the environment"
    if config_file is not None:
        _refuse_secrets_in(config_file)
    base = config_file.parent if config_file is not None else Path.cwd()
    try:
        settings = FromFile()
        # paths in the file are relative to the file, as a user reading it would expect
        return GatewaySettings.model_validate(_anchored(settings.model_dump(), base))
    except ValidationError as exc:
        raise LocalError(f"{where}: {validation_summary(exc)}", reason="CONFIG") from None
    except SettingsError as exc:  # an environment variable of a table that is not JSON
        raise LocalError(_unparsed(exc), reason="CONFIG") from None


def _unparsed(exc: SettingsError) -> str:
    """pydantic-settings' 'error parsing value for field "kafka" ...' as what to do."""
    field = re.search(r'field "(\w+)"', str(exc))
    if field is None:
        return str(exc)
    variable = f"{ENV_PREFIX}{field[1].upper()}"
    return f"{variable} is not valid JSON (or give each of its keys as {variable}__NAME)"


def _refuse_secrets_in(config_file: Path) -> None:
    """Refuse a file that is missing, is not TOML, or holds a secret (`SECRET_SETTINGS`)."""
    if not config_file.is_file():
        raise LocalError(f"no config file at {config_file}", reason="CONFIG")
    try:
        values = tomllib.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LocalError(f"{config_file} is not readable TOML: {exc}", reason="CONFIG") from None
    for name, file_setting in SECRET_SETTINGS.items():
        if name in values:
            raise LocalError(
                f"{config_file}: {name} must not be written in the config file; set "
                f"{ENV_PREFIX}{name.upper()} or {file_setting}",
                reason="CONFIG",
            )


def _anchored(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """``values`` with relative paths made relative to ``base`` (nested tables too)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, Path) and not value.is_absolute():
            out[name] = base / value
        elif isinstance(value, dict):
            out[name] = _anchored(value, base)
        else:
            out[name] = value
    return out
