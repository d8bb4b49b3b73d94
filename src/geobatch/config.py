"""The one settings object: every field is also a ``GEOBATCH_*`` environment variable."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GIB = 1024**3


class Settings(BaseSettings):
    """Configuration for the API, scheduler and workers.

    Built once at start-up (``Settings()`` reads the environment) and passed down explicitly.
    """

    model_config = SettingsConfigDict(env_prefix="GEOBATCH_", extra="ignore")

    data_dir: Path = Path("./geobatch-data")
    database_url: str = ""
    storage_url: str = ""
    releases_dir: Path | None = None
    releases_url: str = Field(
        default="",
        description="object storage holding published releases (s3://bucket/releases): listed "
        "and resolved with the local ones; workers mirror each into releases_dir before mapping it",
    )
    executor: str = "local"
    workers: int = Field(default=0, ge=0, description="local worker processes; 0 = one per core")
    url_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_bytes: int = Field(default=5 * GIB, gt=0)
    redis_url: str = ""
    rate_limit: str = Field(
        default="", description="per-API-key request limit, e.g. '50/second'; empty = none"
    )
    rate_limit_create: str = Field(
        default="", description="per-API-key limit on creating jobs, e.g. '10/minute'"
    )
    rate_limit_download: str = Field(
        default="", description="per-API-key limit on result and error downloads"
    )
    max_running_jobs: int = Field(
        default=0, ge=0, description="per tenant: jobs queued or running at once; 0 = no limit"
    )
    max_stored_bytes: int = Field(
        default=0, ge=0, description="per tenant: bytes of inputs kept; 0 = no limit"
    )
    max_json_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_decompressed_bytes: int = Field(default=50 * GIB, gt=0)
    max_compression_ratio: float = Field(
        default=200.0, gt=1, description="decompressed / compressed size an upload may reach"
    )
    max_line_bytes: int = Field(default=1024 * 1024, gt=0, description="longest CSV line")
    max_field_bytes: int = Field(default=128 * 1024, gt=0, description="longest CSV field")
    max_columns: int = Field(default=500, gt=0, description="CSV, GeoJSON properties, Parquet")
    max_nesting_depth: int = Field(
        default=32, gt=0, description="GeoJSON nesting and Parquet nested types"
    )
    max_geometry_coordinates: int = Field(
        default=100_000, gt=0, description="coordinates in one GeoJSON geometry"
    )
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="API key -> tenant; empty = no authentication"
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, with job and request ids"
    )
    access_log: bool = Field(
        default=False,
        description="log every request (a proxy in front usually does; it costs ~10 % of a poll)",
    )

    import_memory_mb: int = Field(
        default=1024,
        ge=64,
        description="memory a `releases import` may use, whatever the size of its input",
    )

    chunk_size: int = Field(default=5000, gt=0, description="records per chunk")
    lease_seconds: float = Field(default=60.0, gt=0, description="a chunk lease lasts this long")
    max_chunk_attempts: int = Field(default=3, gt=0)
    scheduler_tick_seconds: float = Field(
        default=0.5,
        gt=0,
        description="longest wait of a busy scheduler between rounds (finished work wakes it)",
    )
    retention_days: float = Field(default=7.0, gt=0, description="results kept after a job ends")
    long_poll_max_seconds: float = Field(default=300.0, gt=0)
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="a webhook delivery attempt may take this long"
    )
    webhook_max_attempts: int = Field(
        default=10, ge=1, le=100, description="the most attempts a callback's retry policy may ask"
    )

    @field_validator("url_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("url_allowlist")
    @classmethod
    def _check_allowlist(cls, value: list[str]) -> list[str]:
        for item in value:
            if "/" in item:
                ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("rate_limit", "rate_limit_create", "rate_limit_download")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if value:
            from limits import parse

            parse(value)
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        """``key1:tenant-a,key2:tenant-b``; a key with no tenant is its own tenant."""
        if isinstance(value, str):
            keys: dict[str, str] = {}
            for item in value.split(","):
                key, _, tenant = item.strip().partition(":")
                if key:
                    keys[key] = tenant or key
            return keys
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'geobatch.db'}"
        if not self.storage_url:
            self.storage_url = str(self.data_dir / "storage")
        if self.releases_dir is None:
            self.releases_dir = self.data_dir / "releases"
        return self

    @property
    def releases_path(self) -> Path:
        return self.releases_dir or self.data_dir / "releases"

    @property
    def worker_count(self) -> int:
        import os

        return self.workers or (os.cpu_count() or 1)
