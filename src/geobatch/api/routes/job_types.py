"""``/v1/job-types``: the job types and the JSON Schema of each one's options."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from geobatch.api.deps import TenantDep
from geobatch.jobs import JOB_TYPES

router = APIRouter(prefix="/v1/job-types", tags=["jobs"])


@router.get("")
def list_job_types(_tenant: TenantDep) -> dict[str, Any]:
    """Each type's name, whether it matches against a release, and the JSON Schema of its
    ``options``: the model a job's options are validated with, so a form built from it asks
    for exactly what the service accepts."""
    return {
        "job_types": [
            {
                "name": name,
                "uses_release": kind.uses_release,
                "options_schema": kind.options_model.model_json_schema(),
            }
            for name, kind in sorted(JOB_TYPES.items())
        ]
    }
