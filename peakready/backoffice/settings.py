"""Settings of one back-office worker, from ``PEAKREADY_BACKOFFICE_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from peakready.errors import PeakreadyError, env_error
from peakready.pipeline import QueueSpec, parse_urls

PREFIX = "PEAKREADY_BACKOFFICE_"


class BackofficeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", env_ignore_empty=True)

    host: str = "127.0.0.1"
    port: int = Field(8001, ge=1, le=65535)
    az: str = "local"
    instance_id: str = "backoffice-0"
    # On AWS: publish the backlog's age (the QueueAge alarm) to CloudWatch in this
    # region, namespace peakready/Backoffice, dimension Stack=stack.
    cloudwatch_region: str | None = None
    stack: str = "dev"

    # The back office's own database (never the shop's): applies on the primary,
    # operators' reads (GET /orders/{id}) on the report replica.
    db_dsn: str = "host=127.0.0.1 port=5432 dbname=backoffice user=backoffice connect_timeout=2"
    report_dsn: str | None = None
    db_password: SecretStr | None = None

    queue_url: str = "amqp://peakready@127.0.0.1:5672/%2F"
    queue_password: SecretStr | None = None
    queue_name: str = "orders"
    queue_max_length: int = Field(1_000_000, ge=1)
    queue_message_ttl_s: int = Field(7 * 86400, ge=60)
    queue_dead_letter: bool = True
    # Deliveries in flight per worker (unacknowledged): the batch one commit covers.
    prefetch: int = Field(100, ge=1, le=10000)

    audit_token: SecretStr | None = None
    log_level: str = "warning"

    def queue(self) -> QueueSpec:
        return QueueSpec(
            self.queue_name, self.queue_max_length, self.queue_message_ttl_s, self.queue_dead_letter
        )


def load_settings(env_file: Path | None = None) -> BackofficeSettings:
    """The settings from the environment (and ``env_file``); a bad value is one line."""
    try:
        settings = BackofficeSettings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise env_error(exc, PREFIX) from None
    parse_urls(settings.queue_url, f"{PREFIX}QUEUE_URL")
    if settings.queue_password is None:
        raise PeakreadyError(f"{PREFIX}QUEUE_PASSWORD: required")
    return settings
