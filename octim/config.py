"""Engine settings: a TOML file, then ``OCTIM_*`` environment variables, then flags.

Each later source overrides the earlier ones. :func:`load_settings` validates
everything up front and raises :class:`~octim.errors.ConfigError` naming the
one setting that is wrong, so start-up fails with one clear line.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octim.errors import ConfigError
from octim.proxies import parse_targets
from octim.store.crypto import load_keys

MIN_SECRET_BYTES = 32  # HS256 needs a key at least as long as its hash (RFC 7518 §3.2)
MIN_API_KEY_CHARS = 16
DEFAULT_GC_THRESHOLD = 50_000
DEFAULT_SWITCH_INTERVAL = 0.001


@dataclass(frozen=True, slots=True)
class HostPort:
    """A listening address; port 0 asks the OS for a free port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the engine reads at start-up."""

    data: Path
    secret: str
    api_key: str
    http: HostPort = HostPort("127.0.0.1", 8080)
    ws: HostPort = HostPort("127.0.0.1", 8081)
    log_level: str = "INFO"
    log_format: str = "json"  # or "text"
    # store
    map_size: int = 64 << 20
    commit_max_batch: int = 4096
    # interpreter tuning applied once started
    gc_freeze: bool = True
    gc_threshold: int = DEFAULT_GC_THRESHOLD  # generation-0 threshold after start-up
    switch_interval: float = DEFAULT_SWITCH_INTERVAL  # seconds; sys.setswitchinterval
    shutdown_grace: float = 5.0  # seconds for in-flight requests at shutdown
    # gateway
    max_frame_bytes: int = 64 * 1024  # larger frames close the connection with 1009
    outbox_frames: int = 1024  # per connection; past it a slow client is closed with 4008
    heartbeat_interval: float = 20.0  # seconds between pings; a missed pong closes
    idle_timeout: float = 600.0  # seconds without a client frame before closing
    rate_per_second: float = 20.0  # frames a connection may send per second, sustained
    rate_burst: int = 60  # ... and in a burst
    # conversations
    max_text_chars: int = 5000
    recall_window: float = 120.0  # seconds an author may recall a message
    reopen_window: float = 600.0  # seconds after resolve in which a buyer message reopens
    auto_close_after: float = 1800.0  # seconds of inactivity before a conversation closes
    ticket_auto_close: float = 259200.0  # seconds after solved before a ticket closes (72 h)
    sweep_interval: float = 30.0  # seconds between auto-close sweeps
    # routing
    presence_grace: float = 30.0  # seconds after an agent's last connection drops → offline
    routing_tick: float = 1.0  # seconds between routing timer checks
    monitor_interval: float = 1.0  # seconds between live monitor updates to a screen
    report_interval: float = 10.0  # seconds between report catch-ups (a read catches up too)
    public_ws_url: str = ""  # the gateway URL browsers use (default: the bound --ws address)
    # webhooks
    webhook_timeout: float = 5.0  # seconds per delivery attempt
    webhook_attempts: int = 6  # attempts before a delivery goes to the dead letters
    webhook_backoff: float = 2.0  # seconds before the first retry; doubles each time
    webhook_allow: str = ""  # hosts or networks webhooks may reach although private (a,b/24)
    outbox_posters: int = 4  # threads posting webhooks and channel replies
    outbox_max_pending: int = 100_000  # webhook events queued per endpoint before dropping
    outbox_webhook_parallel: int = 2  # webhook attempts in flight per endpoint (channels: 1)
    # channels (docs/channels.md)
    channel_clock_skew: float = 300.0  # seconds a signed inbound request's timestamp may be off
    # admission control (octim/admission.py, docs/operations.md)
    admission_loop_lag_ms: float = 250.0  # new conversations wait while the loop is this late
    admission_commit_ms: float = 500.0  # ... or recent commits' p90 takes this long
    admission_mailbox: int = 2000  # ... or this many messages wait for the dispatcher
    admission_ack_ms: float = 500.0  # ... or recent acks' p90 takes this long
    admission_retry_after: float = 2.0  # seconds a refused buyer is told to wait
    admission_probe_interval: float = 0.05  # seconds between the loop-lag probe's wake-ups
    metrics_token: str = ""  # a bearer token for GET /metrics besides the API key
    peak_prewarm: float = 600.0  # seconds before a peak window its shops are pre-warmed
    # campaigns (docs/outreach.md)
    campaign_max_rate: float = 200.0  # campaign messages per second, all campaigns together
    campaign_max_audience: int = 1_000_000  # recipients one campaign run may have
    campaign_in_flight: int = 4  # sends of one campaign under way at once
    public_url: str = ""  # the HTTP API's URL as buyers reach it (campaign links); "" relative
    # outgoing email (public ticket replies; docs/tickets.md)
    smtp: str = ""  # host:port of the SMTP relay; empty: no email goes out
    smtp_from: str = ""  # the From address (a shop's settings.email_from overrides it)
    smtp_security: str = "starttls"  # starttls (required), tls (implicit, port 465) or none
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_ca_file: str = ""  # PEM CA bundle to trust for the relay (default: the system's)
    mail_timeout: float = 10.0  # seconds per SMTP transaction
    mail_attempts: int = 8  # attempts before a message goes to mail_dead
    mail_backoff: float = 30.0  # seconds before the first retry; doubles each time
    # uploads
    max_image_bytes: int = 10 * 1024 * 1024
    max_voice_bytes: int = 5 * 1024 * 1024
    # trust (docs/security.md)
    max_json_body_bytes: int = 256 * 1024  # HTTP JSON bodies; larger ones answer 413
    max_connections_per_user: int = 20  # WebSocket sessions per user; more close with 4009
    read_timeout: float = 30.0  # seconds an HTTP connection may send nothing mid-request
    handshake_timeout: float = 10.0  # seconds for a TLS or WebSocket opening handshake
    image_hosts: str = ""  # hosts card images may come from besides our uploads (a.com,b.com)
    trusted_proxies: str = ""  # addresses/networks whose X-Forwarded-* headers are believed
    cross_shop_transfer: bool = False  # staff may transfer to shops they do not serve
    tls_cert: str = ""  # PEM certificate chain: serve HTTPS and WSS (with tls_key)
    tls_key: str = ""  # PEM private key of tls_cert
    data_key: str = ""  # at-rest encryption keys "id:base64key[,id:base64key…]"; first is current
    data_key_file: str = ""  # ... or a file holding them, one per line


@functools.cache
def host_list(value: str) -> frozenset[str]:
    """A comma-separated list setting as lower-case host names."""
    return frozenset(part.strip().lower().rstrip(".") for part in value.split(",")
                     if part.strip())


def env_var(name: str) -> str:
    """The environment variable of a setting."""
    return "OCTIM_" + name.upper()


_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}
_EMAIL = re.compile(r"[^@\s<>\"]{1,64}@[A-Za-z0-9.-]{1,253}")


def parse_host_port(setting: str, value: Any) -> HostPort:
    """Parse ``host:port`` (IPv6 hosts in brackets)."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(setting, f"expected host:port, got {value!r}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(setting, f"port {port_text!r} is not a number") from None
    if not host or not 0 <= port <= 65535:
        raise ConfigError(setting, f"expected host:port with a port 0-65535, got {value!r}")
    return HostPort(host, port)


def _parse_bool(setting: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(setting, f"expected true or false, got {value!r}")


def _parse_positive(setting: str, value: Any, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool):
        raise ConfigError(setting, f"expected a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(setting, f"expected a number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(setting, f"must be positive, got {value!r}")
    return number


def _convert(name: str, value: Any) -> Any:
    label = f"{name} ({env_var(name)})"
    kind = _FIELD_TYPES.get(name)
    if kind == "HostPort":
        return value if isinstance(value, HostPort) else parse_host_port(label, value)
    if kind == "Path":
        return Path(value)
    if kind == "bool":
        return _parse_bool(label, value)
    if kind == "int":
        return _parse_positive(label, value, int)
    if kind == "float":
        return _parse_positive(label, value, float)
    if not isinstance(value, str):
        raise ConfigError(label, "must be a string")
    if name == "log_level":
        if value.upper() not in _LOG_LEVELS:
            raise ConfigError(label, f"expected one of {sorted(_LOG_LEVELS)}, got {value!r}")
        return value.upper()
    if name == "public_ws_url" and value and not value.startswith(("ws://", "wss://")):
        raise ConfigError(label, f"expected a ws:// or wss:// URL, got {value!r}")
    if name == "public_url" and value and not value.startswith(("http://", "https://")):
        raise ConfigError(label, f"expected an http:// or https:// URL, got {value!r}")
    if name == "log_format" and value not in {"json", "text"}:
        raise ConfigError(label, f"expected json or text, got {value!r}")
    if name == "smtp" and value:
        parse_host_port(label, value)
    if name == "smtp_security" and value not in {"starttls", "tls", "none"}:
        raise ConfigError(label, f"expected starttls, tls or none, got {value!r}")
    if name == "smtp_from" and value and not _EMAIL.fullmatch(value):
        raise ConfigError(label, f"expected an email address, got {value!r}")
    if name in ("webhook_allow", "trusted_proxies") and value:
        _check_networks(label, value)
    return value


def _check_networks(label: str, value: str) -> None:
    try:
        parse_targets(value, names=label.startswith("webhook_allow"))
    except ValueError as exc:
        raise ConfigError(label, str(exc)) from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("--config", f"file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - set(_FIELD_TYPES))
    if unknown:
        raise ConfigError(f"{unknown[0]} (in {path})",
                          f"unknown setting; known: {sorted(_FIELD_TYPES)}")
    return raw


def load_settings(*, config_file: Path | None = None, env: Mapping[str, str] | None = None,
                  flags: Mapping[str, Any] | None = None) -> Settings:
    """Merge file → environment → flags, validate, and return the settings."""
    environ = os.environ if env is None else env
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(_read_file(config_file))
    for name in _FIELD_TYPES:
        if env_var(name) in environ:
            merged[name] = environ[env_var(name)]
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    problems: list[ConfigError] = []  # every one is told at once, not one per try
    values: dict[str, Any] = {}
    for name, value in merged.items():
        try:
            values[name] = _convert(name, value)
        except ConfigError as exc:
            problems.append(exc)
    for name in ("data", "secret", "api_key"):
        if name not in values or values[name] in ("", None):
            if not any(p.setting.startswith(f"{name} ") for p in problems):
                problems.append(ConfigError(f"{name} ({env_var(name)})",
                                            "is required but not set"))
    if len((values.get("secret") or "").encode()) in range(1, MIN_SECRET_BYTES):
        problems.append(ConfigError("secret (OCTIM_SECRET)",
                                    f"must be at least {MIN_SECRET_BYTES} bytes for HS256"))
    if len(values.get("api_key") or "") in range(1, MIN_API_KEY_CHARS):
        problems.append(ConfigError("api_key (OCTIM_API_KEY)",
                                    f"must be at least {MIN_API_KEY_CHARS} characters"))
    if bool(values.get("tls_cert")) != bool(values.get("tls_key")):
        problems.append(ConfigError("tls_cert (OCTIM_TLS_CERT)",
                                    "tls_cert and tls_key go together"))
    for name in ("tls_cert", "tls_key", "data_key_file", "smtp_ca_file"):
        if values.get(name) and not Path(values[name]).is_file():
            problems.append(ConfigError(f"{name} ({env_var(name)})", f"no file {values[name]}"))
    if not problems:
        try:
            load_keys(values.get("data_key", ""), values.get("data_key_file", ""))  # fail now
        except ConfigError as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigError(f"{len(problems)} settings", "; ".join(str(p) for p in problems),
                          tuple(problems))
    return Settings(**values)

