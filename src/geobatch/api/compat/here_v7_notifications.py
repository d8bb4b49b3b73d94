"""HERE's BETA notifications under ``/v7/batch/notifications``, on geobatch's webhooks.

A notification is a URL with placeholders (``${JOB_ID}``, ``${JOB_STATUS}``, the record
counts) that HERE calls with GET when a job it is named by ends. Here it is kept in the
tenant's storage; a job created with ``notificationIds`` names it in its metadata, and when
the job succeeds or fails each URL, filled in, goes to the webhook outbox: the call is a
signed GET (``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` over an empty body),
retried as ``/v1`` callbacks are, with every attempt in the job's delivery log. The signing
secret is geobatch's addition, shown once when the notification is created.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from geobatch.api.compat.here_v7 import SERVICES, STATUS, TenantDep, records_of, router
from geobatch.api.deps import ServiceDep
from geobatch.errors import GeobatchError, InvalidInput, NotFound
from geobatch.jobs import Job, JobService, JobStatus
from geobatch.jobs.callbacks import DEFAULT_SIGNATURE_HEADER, RetryPolicy, generate_secret
from geobatch.jobs.delivery import enqueue, http_client, send
from geobatch.jobs.hooks import on_finish
from geobatch.jobs.urls import check_url

PLACEHOLDERS = (
    "JOB_ID",
    "JOB_NAME",
    "JOB_STATUS",
    "JOB_OUTPUT_TYPE",
    "JOB_RECORDS_SUCCEEDED",
    "JOB_RECORDS_FAILED",
    "JOB_RECORDS_TOTAL",
    "JOB_RECORDS_VALID",
    "JOB_RECORDS_INVALID",
)
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")
_ID = r"^NOTIFICATION-[0-9a-f-]{36}$"
NotificationId = Annotated[str, Path(alias="notificationId", pattern=_ID)]


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)


class NotificationBody(BaseModel):
    """A notification as a client writes it: only ``webHook`` exists."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webHook"] = "webHook"
    config: Config


class DeliveryFailed(GeobatchError):
    """Notification receiver failed."""

    status = 502
    slug = "bad-gateway"


def _folder(tenant: str) -> str:
    return f"here/notifications/{hashlib.sha256(tenant.encode()).hexdigest()[:16]}"


def _key(tenant: str, notification_id: str) -> str:
    return f"{_folder(tenant)}/{notification_id}.json"


def load(service: JobService, tenant: str, notification_id: str) -> dict[str, Any]:
    key = _key(tenant, notification_id)
    if not re.match(_ID, notification_id) or not service.storage.exists(key):
        raise NotFound(f"No notification {notification_id}.")
    with service.storage.open_read(key) as source:
        stored: dict[str, Any] = json.load(source)
    return stored


def _save(service: JobService, tenant: str, stored: dict[str, Any]) -> None:
    with service.storage.open_write(_key(tenant, stored["id"])) as sink:
        sink.write(json.dumps(stored).encode())


def _checked(service: JobService, body: NotificationBody) -> str:
    unknown = set(_PLACEHOLDER.findall(body.config.url)) - set(PLACEHOLDERS)
    if unknown:
        raise InvalidInput(
            f"config.url: unknown placeholder(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(PLACEHOLDERS)}",
            field="config.url",
        )
    check_url(_filled(body.config.url, {}), service.settings.url_allowlist, what="webHook URL")
    return body.config.url


def _shown(stored: dict[str, Any], *, with_secret: bool = False) -> dict[str, Any]:
    shown = {k: stored[k] for k in ("id", "type", "lastUsedTime", "config")}
    if with_secret:
        shown["secret"] = stored["secret"]
    return shown


def check_ids(service: JobService, tenant: str, ids: list[str]) -> list[str]:
    """The notification ids a job is created with, each an existing notification."""
    for notification_id in ids:
        try:
            load(service, tenant, notification_id)
        except NotFound:
            raise InvalidInput(
                f"notificationIds: no notification {notification_id}", field="notificationIds"
            ) from None
    return ids


def _filled(url: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: quote(values.get(m.group(1), ""), safe=""), url)


def values_of(job: Job) -> dict[str, str]:
    """Each placeholder's value for a job, in HERE's terms."""
    records = records_of(job)
    return {
        "JOB_ID": f"JOB-{job.id}",
        "JOB_NAME": job.metadata.get("here:tag", ""),
        "JOB_STATUS": STATUS[job.status],
        "JOB_OUTPUT_TYPE": job.metadata.get("here:outputType", "csv"),
        "JOB_RECORDS_SUCCEEDED": str(records["succeeded"]),
        "JOB_RECORDS_FAILED": str(records["failed"]),
        "JOB_RECORDS_TOTAL": str(records["total"]),
        "JOB_RECORDS_VALID": str(records["valid"]),
        "JOB_RECORDS_INVALID": str(records["invalid"]),
    }


def _callback(stored: dict[str, Any], url: str) -> dict[str, Any]:
    return {
        "url": url,
        "method": "GET",
        "secret": stored["secret"],
        "signature_header": DEFAULT_SIGNATURE_HEADER,
        "retry_policy": RetryPolicy().model_dump(),
    }


def notify(service: JobService, job: Job) -> None:
    """Queue the job's notifications when it has ended (a finish hook)."""
    ids = [i for i in job.metadata.get("here:notificationIds", "").split(",") if i]
    if not ids or job.type not in SERVICES.values():
        return
    values = values_of(job)
    event = "job.succeeded" if job.status is JobStatus.SUCCEEDED else "job.failed"
    for notification_id in ids:
        try:
            stored = load(service, job.tenant, notification_id)
        except NotFound:
            continue  # deleted since the job was created
        url = _filled(stored["config"]["url"], values)
        enqueue(service.store.db, job.id, event, _callback(stored, url), "")
        stored["lastUsedTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        _save(service, job.tenant, stored)
    service.feed.publish(job.id)  # wakes the delivery loop for the rows just queued


on_finish(notify)


@router.get("/batch/notifications")
def list_notifications(service: ServiceDep, tenant: TenantDep) -> list[dict[str, Any]]:
    """Every notification of the caller."""
    prefix = _folder(tenant) + "/"
    found = []
    for key in service.storage.list(prefix):
        with service.storage.open_read(key) as source:
            found.append(_shown(json.load(source)))
    return sorted(found, key=lambda n: str(n["id"]))


@router.post("/batch/notifications", status_code=status.HTTP_201_CREATED)
def create_notification(
    body: NotificationBody, service: ServiceDep, tenant: TenantDep
) -> dict[str, Any]:
    """A new webHook notification; its signing ``secret`` is shown in this answer only."""
    stored = {
        "id": f"NOTIFICATION-{uuid.uuid4()}",
        "type": body.type,
        "lastUsedTime": None,
        "config": {"url": _checked(service, body)},
        "secret": generate_secret(),
    }
    _save(service, tenant, stored)
    return _shown(stored, with_secret=True)


@router.get("/batch/notifications/{notificationId}")
def get_notification(
    notification_id: NotificationId, service: ServiceDep, tenant: TenantDep
) -> dict[str, Any]:
    return _shown(load(service, tenant, notification_id))


@router.put("/batch/notifications/{notificationId}")
def replace_notification(
    notification_id: NotificationId, body: NotificationBody, service: ServiceDep, tenant: TenantDep
) -> dict[str, Any]:
    """A new URL for the notification; its id and secret stay."""
    stored = load(service, tenant, notification_id)
    stored.update(type=body.type, config={"url": _checked(service, body)})
    _save(service, tenant, stored)
    return _shown(stored)


@router.delete("/batch/notifications/{notificationId}", status_code=status.HTTP_204_NO_CONTENT)
def delete_notification(
    notification_id: NotificationId, service: ServiceDep, tenant: TenantDep
) -> Response:
    load(service, tenant, notification_id)
    service.storage.delete(_key(tenant, notification_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/batch/notifications/{notificationId}/test",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        502: {
            "description": "The receiver did not take the call",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
def test_notification(
    notification_id: NotificationId, service: ServiceDep, tenant: TenantDep
) -> Response:
    """Call the URL now, signed, with made-up job values; 204 when the receiver took it."""
    stored = load(service, tenant, notification_id)
    values = dict.fromkeys(PLACEHOLDERS, "0") | {
        "JOB_ID": f"JOB-{uuid.UUID(int=0)}",
        "JOB_STATUS": "completed",
        "JOB_OUTPUT_TYPE": "csv",
    }
    url = _filled(stored["config"]["url"], values)
    settings = service.settings
    with http_client(settings) as http:
        outcome = send(http, settings, _callback(stored, url), f"msg_test_{uuid.uuid4().hex}", "")
    if not outcome.ok:
        raise DeliveryFailed(f"The receiver did not take the call: {outcome.error}.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
