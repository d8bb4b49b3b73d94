"""``/v1/releases``: the reference data releases this server can match against."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from geobatch.api.deps import PlatformDep, TenantDep

router = APIRouter(prefix="/v1/releases", tags=["releases"])


@router.get("")
def list_releases(platform: PlatformDep, _tenant: TenantDep) -> dict[str, Any]:
    """Every complete release, newest first (the newest is what jobs use by default)."""
    return {"releases": [manifest.to_json() for manifest in platform.releases.list()]}


@router.get("/{release_id}")
def get_release(release_id: str, platform: PlatformDep, _tenant: TenantDep) -> dict[str, Any]:
    """One release's manifest (by id, or the newest release of that name): sources with
    checksums, counts per table, bounding box, files with sizes and checksums."""
    return platform.releases.resolve(release_id).to_json()
