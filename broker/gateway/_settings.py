"""Gateway configuration: a TOML file, overridden by ``LVVX_GATEWAY_*`` environment variables.

Only the service edge builds these settings (STYLE §8); the gateway core takes explicit
arguments. Secrets — the key passphrase and the back office's API token — come from the
environment or from files named here, never from the TOML file itself.

Example (``gateway.toml``)::

    party = "gemeente-utrecht"
    keys_dir = "keys"
    directory_file = "directory.bin"
    anchor_file = "keys/anchor.public.json"
    data_dir = "state/gemeente-utrecht"
    transport = "kafka"
    api_token_file = "secrets/utrecht.token"

    [kafka]
    bootstrap_servers = "127.0.0.1:9093"
    security_protocol = "SSL"             # mutual TLS 1.3 with the party's certificate
    ssl_cafile = "pki/ca.pem"
    ssl_certfile = "pki/gemeente-utrecht.crt"
    ssl_keyfile = "pki/gemeente-utrecht.key"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from broker._errors import LocalError
from broker.models._base import PARTY_ID_PATTERN
from broker.topics import DEFAULT_PREFIX
from broker.transport._kafka import KafkaOptions

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body the HTTP API reads: a big dossier as JSON is well under this."""


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LVVX_GATEWAY_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    party: str = Field(pattern=PARTY_ID_PATTERN, description="This gateway's party id.")
    keys_dir: Path = Field(description="Folder with the party's key files (`lvvx keys init`).")
    directory_file: Path = Field(description="The signed key directory (`lvvx directory build`).")
    anchor_file: Path = Field(
        description="The pinned trust anchor public key (anchor.public.json)."
    )
    network: str | None = Field(None, description="Refuse a directory of another network.")
    data_dir: Path = Field(description="Where the gateway keeps its state (inbox, replay guard).")
    transport: Literal["embedded", "kafka"] = "embedded"
    embedded_log: Path | None = Field(
        None, description="The embedded log file shared by the network."
    )
    kafka: KafkaOptions = KafkaOptions()
    topic_prefix: str = DEFAULT_PREFIX
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    api_token: SecretStr | None = Field(None, description="Bearer token of the back office.")
    api_token_file: Path | None = Field(None, description="File holding the bearer token.")
    webhook_url: AnyHttpUrl | None = Field(None, description="POST each delivered message here.")
    receipt_timeout_s: float = Field(300.0, gt=0)
    max_body_bytes: int = Field(MAX_BODY_BYTES, gt=0)

    def token(self) -> str:
        """The back office's bearer token; a gateway without one does not start."""
        if self.api_token is not None:
            return self.api_token.get_secret_value()
        if self.api_token_file is not None:
            try:
                token = self.api_token_file.read_text().strip()
            except OSError as exc:
                raise LocalError(
                    f"cannot read api_token_file: {exc.strerror}", reason="CONFIG"
                ) from exc
            if token:
                return token
        raise LocalError(
            "no API token: set LVVX_GATEWAY_API_TOKEN or api_token_file", reason="CONFIG"
        )


def load_settings(config_file: Path | None = None) -> GatewaySettings:
    """Settings from ``config_file`` (TOML), with the environment taking precedence."""

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

    if config_file is not None and not config_file.is_file():
        raise LocalError(f"no config file at {config_file}", reason="CONFIG")
    base = config_file.parent if config_file is not None else Path.cwd()
    settings = FromFile()
    # paths in the file are relative to the file, as a user reading it would expect
    return GatewaySettings.model_validate(_anchored(settings.model_dump(), base))


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
