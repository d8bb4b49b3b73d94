"""``/v1/releases``: the reference data releases this server can match against, built here or
published to its object store (``GEOBATCH_RELEASES_URL``)."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from fastapi import APIRouter

from geobatch.api.deps import PlatformDep, TenantDep
from geobatch.reference import Manifest

router = APIRouter(prefix="/v1/releases", tags=["releases"])


def public_manifest(manifest: Manifest) -> dict[str, Any]:
    """The manifest as clients see it: a source is named by its file name, not a server path."""
    data = manifest.to_json()
    for source in data.get("sources", []):
        source["path"] = PurePath(str(source["path"])).name
    return data


@router.get("")
def list_releases(platform: PlatformDep, _tenant: TenantDep) -> dict[str, Any]:
    """Every complete release, newest first (the newest is what jobs use by default)."""
    return {"releases": [public_manifest(manifest) for manifest in platform.releases.list()]}


@router.get("/{release_id}")
def get_release(release_id: str, platform: PlatformDep, _tenant: TenantDep) -> dict[str, Any]:
    """One release's manifest (by id, or the newest release of that name): sources with
    checksums, counts per table, bounding box, files with sizes and checksums."""
    return public_manifest(platform.releases.resolve(release_id))
