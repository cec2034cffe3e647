"""One settings object, read from ``OFFSITE_*`` variables and validated at start.

Built in ``main()`` (or a test) and passed down; nothing reads the environment at
import time. ``database_url`` and ``mqtt_url`` left unset mean "start the embedded
PostgreSQL and broker" — the fresh-laptop default.
"""

from __future__ import annotations

import os
from datetime import timedelta, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from offsite.core.errors import SettingsError
from offsite.core.secrecy import weak_secret


class Settings(BaseSettings):
    """Every knob Offsite has. The README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(
        env_prefix="OFFSITE_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    env: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: text on a terminal, one JSON object a line elsewhere"
    )
    data_dir: Path = Field(
        default=Path(".offsite"), description="embedded PostgreSQL data and other local state"
    )

    # services (None → embedded)
    database_url: str | None = None
    mqtt_url: str | None = None
    db_pool_max: int = Field(default=8, ge=1, le=200)

    # MQTT ingest
    mqtt_topic: str = "devices/+/telemetry"
    mqtt_client_id: str = "offsite-ingest"
    mqtt_shared_group: str | None = Field(
        default=None, description="subscribe as $share/<group>/<topic> to scale out workers"
    )
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=3600)

    # batching and validation
    batch_max_readings: int = Field(default=20_000, ge=1, le=1_000_000)
    batch_max_delay_ms: int = Field(default=200, ge=1, le=60_000)
    batch_idle_ms: float = Field(
        default=5.0, gt=0, le=60_000, description="commit once the inbox is idle this long"
    )
    queue_max_messages: int = Field(default=10_000, ge=10)
    max_payload_bytes: int = Field(default=256 * 1024, ge=256)
    max_future_s: float = Field(default=300.0, ge=0, description="clock skew tolerated")
    max_age_days: float = Field(default=30.0, gt=0, description="oldest backfill accepted")

    # ingest's disk buffer (ingest/spool.py)
    spool_dir: Path | None = Field(
        default=None,
        description="while the database is away, ingest keeps what it receives here "
        "(one sub-directory per worker, fsync'd before the broker is acknowledged) and "
        "stores it when the database returns; unset: off, the broker holds the backlog",
    )
    spool_max_bytes: int = Field(
        default=1024**3,
        ge=1024**2,
        le=2**50,
        description="the spool's size limit; full, ingest stops acknowledging",
    )

    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="ingest's Prometheus /metrics; unset: off"
    )

    # HJ 212
    hj212_utc_offset_h: float = Field(
        default=8.0, ge=-12, le=14, description="zone of HJ 212 times (Beijing: +8)"
    )
    hj212_split_timeout_s: float = Field(
        default=60.0, gt=0, description="wait this long for all split parts"
    )
    hj212_require_password: bool = Field(
        default=False, description="refuse HJ 212 packets of devices without a registered PW"
    )
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=9212, ge=0, le=65535)
    gateway_idle_timeout_s: float = Field(default=300.0, gt=0)
    gateway_frame_timeout_s: float = Field(
        default=30.0, gt=0, description="an unfinished packet waits this long"
    )
    gateway_max_garbage_bytes: int = Field(default=16_384, ge=0)
    gateway_max_connections: int = Field(default=2000, ge=1)

    # storage upkeep (`offsite db maintain`, and ingest at start and periodically)
    retention_days: float | None = Field(
        default=1096.0,
        gt=0,
        description="raw readings older than this are dropped "
        "(whole months); rollups are kept; unset: keep all",
    )
    partition_months_ahead: int = Field(
        default=3, ge=0, le=120, description="monthly partitions created ahead"
    )
    maintain_interval_s: float | None = Field(
        default=3600.0,
        gt=0,
        description="ingest re-runs partition upkeep this often; unset: only at start",
    )

    # rules
    rules_file: Path | None = Field(
        default=None, description="rules file (TOML); None: the packaged rules"
    )
    offline_check_s: float = Field(default=5.0, gt=0)
    rule_warm_s: float = Field(
        default=14400.0,
        ge=0,
        description="at start, rebuild rule state from the series "
        "heard from in this much stored history",
    )
    rule_warm_max: int = Field(
        default=240, ge=0, le=100_000, description="… replaying at most this many values per series"
    )
    alert_clear_s: float = Field(
        default=300.0,
        ge=0,
        description="condition absent this long → alert cleared "
        "(for rules that do not set clear_after)",
    )
    rule_reorder_ms: float = Field(
        default=250.0,
        ge=0,
        le=60_000,
        description="readings received within this long of each "
        "other by different workers are judged in "
        "device-time order",
    )
    rule_shards: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="devices are judged in this many shards (crc32 of the MN), each led "
        "by one rule runner: N runners share them, ceil(shards / runners) each; the "
        "same on every runner (stop them all to change it)",
    )
    rules_runner: Literal["process", "external"] = Field(
        default="process",
        description="process: each ingest worker starts a rule runner process beside it "
        "(one of them leads); external: this worker only queues, and "
        "`offsite rules` runs elsewhere",
    )
    alert_reopen_s: float = Field(
        default=21600.0,
        ge=0,
        description="a condition returning within this long of its alert's close reopens it",
    )

    # API
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(default=None, description="base URL printed in QR codes")
    qr_secret: str | None = Field(
        default=None,
        description="signs QR codes; unset: a random one generated once and kept in "
        "OFFSITE_DATA_DIR/secrets/qr_secret (development only)",
    )
    qr_key_id: str = "k1"
    qr_verify_keys: dict[str, str] = Field(
        default_factory=dict,
        description="older QR keys still accepted, as JSON "
        '{"k0": "<secret>"}: rotate without reprinting',
    )
    qr_code_ttl_days: int = Field(default=0, ge=0, description="printed codes expire; 0: never")
    checkin_replay_s: float = Field(
        default=600.0, ge=0, description="a repeated check-in within this returns the open visit"
    )
    session_ttl_h: float = Field(default=12.0, gt=0, description="login token lifetime")
    forwarded_allow_ips: str = Field(
        default="",
        description="proxies whose X-Forwarded-For/-Proto are believed (comma-separated "
        "addresses or networks); empty: none, the client is the TCP peer",
    )
    api_key_ttl_days: float = Field(
        default=90.0, gt=0, description="an API key stops working this long after it is issued"
    )
    feed_recheck_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="a live stream re-checks its token this often (logout, deactivation, expiry)",
    )
    http_body_max_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="request body limit of most routes"
    )
    http_login_max_bytes: int = Field(
        default=8 * 1024, ge=256, description="request body limit of POST /auth/login"
    )
    http_upload_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="request body limit of routes carrying attachments (base64 in JSON)",
    )
    login_rate_per_min: float = Field(default=10.0, gt=0)
    checkin_rate_per_min: float = Field(default=6.0, gt=0)

    # the closed loop: cases, visits, webhook
    case_response_h: float = Field(
        default=72.0,
        gt=0,
        description="the enterprise answers a case within this long, or the case escalates",
    )
    case_check_s: float = Field(
        default=60.0, gt=0, description="how often the API looks for overdue responses"
    )
    visit_guard_days: float = Field(default=90.0, gt=0, description="the frequency guard's period")
    visit_guard_max: int = Field(
        default=2,
        ge=0,
        description="unscheduled visits in the period beyond which a visit needs a recorded reason",
    )
    attachment_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    attachment_case_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="all attachments of one case together"
    )
    attachment_enterprise_max_bytes: int = Field(
        default=500 * 1024 * 1024,
        ge=1024,
        description="all attachments of one enterprise's cases together",
    )
    webhook_url: str | None = Field(
        default=None, description="outside systems are told of case events here (POST JSON)"
    )
    webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key: X-Offsite-Signature: sha256=<hex of the body>"
    )
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)

    # registry
    registry_file: Path | None = None

    @field_validator("rules_file")
    @classmethod
    def _rules_file_exists(cls, v: Path | None) -> Path | None:
        """A missing file is refused here; its content is checked by the shell at start
        (``offsite.cli.settings_from_env``), since the kernel knows no rules."""
        if v is not None and not v.is_file():
            raise ValueError(f"{v}: no such file")
        return v

    @field_validator("spool_dir")
    @classmethod
    def _spool_dir_usable(cls, v: Path | None) -> Path | None:
        """Refuse a spool path that is a file, or whose nearest existing parent is not a
        writable directory, at start rather than at the first outage."""
        if v is None:
            return v
        if v.exists() and not v.is_dir():
            raise ValueError(f"{v} exists and is not a directory")
        probe = v
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            raise ValueError(f"{probe} is not a writable directory")
        return v

    @field_validator("mqtt_topic")
    @classmethod
    def _check_topic(cls, v: str) -> str:
        parts = v.split("/")
        if parts.count("+") != 1 or "#" in parts or parts[0] == "+" or parts[-1] == "+":
            raise ValueError(
                "must have exactly one '+' level (the device MN) between a "
                "prefix and a suffix, e.g. devices/+/telemetry"
            )
        return v

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("mqtt", "tcp"):
            raise ValueError("must be an mqtt://host:port URL")
        return v

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        """Production signs only with secrets set on purpose and hard to guess: every
        replica needs the same key, and a length check alone passes 36 × "a"."""
        if self.qr_key_id in self.qr_verify_keys:
            raise ValueError(
                f"OFFSITE_QR_VERIFY_KEYS must not repeat the signing key id {self.qr_key_id!r}"
            )
        if self.env != "production":
            return self
        if self.qr_secret is None:
            raise ValueError(
                "OFFSITE_QR_SECRET must be set in production (e.g. `openssl rand -hex 32`)"
            )
        why = weak_secret(self.qr_secret)
        if why:
            raise ValueError(f"OFFSITE_QR_SECRET is refused in production: {why}")
        for kid, key in self.qr_verify_keys.items():
            why = weak_secret(key)
            if why:
                raise ValueError(
                    f"OFFSITE_QR_VERIFY_KEYS key {kid!r} is refused in production: {why}"
                )
        return self

    @model_validator(mode="after")
    def _uploads_fit(self) -> Settings:
        """One attachment of the largest allowed size must fit in an upload request: it
        travels as base64, a third larger, inside JSON."""
        needed = -(-self.attachment_max_bytes * 4 // 3) + 64 * 1024
        if self.http_upload_max_bytes < needed:
            raise ValueError(
                f"OFFSITE_HTTP_UPLOAD_MAX_BYTES ({self.http_upload_max_bytes}) must be at least "
                f"{needed} for an attachment of OFFSITE_ATTACHMENT_MAX_BYTES "
                f"({self.attachment_max_bytes}) sent as base64"
            )
        return self

    @property
    def retention(self) -> timedelta | None:
        return timedelta(days=self.retention_days) if self.retention_days else None

    @property
    def hj212_tz(self) -> timezone:
        """The zone HJ 212 loggers write their times in."""
        return timezone(timedelta(hours=self.hj212_utc_offset_h))

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) and fail with one clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"OFFSITE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else err["msg"]
            for err in exc.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from exc
