"""Running a deployment: each template resource applied through Galley's own ARM API, as the caller.

Every resource is a PUT to Galley's application in this process (an ASGI call, no socket) carrying
the caller's own bearer token, so authentication, authorization, validation and the quick/long
answer all happen exactly as if the caller had sent that PUT: a Reader's deployment fails on each
resource with AuthorizationFailed and changes nothing. Long-running answers are followed
(Azure-AsyncOperation, else Location, else the resource's provisioningState) until they end.
Resources run wave by wave in `dependsOn` order, the members of a wave side by side; a resource
whose dependency failed is not attempted.

The token lives only in this task's memory, never in the store: a deployment whose process ended
(a restart) is reported Failed by whoever reads it next (see records.py), and can be sent again. A
deployment outlasting the token (its lifetime is Galley's token lifetime, an hour by default) sees
its later resources refused as unauthenticated.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ..domain.resource import iso, utc_now
from .expressions import TemplateError
from .template import PlannedResource, Template, waves

MAX_RESOURCE_SECONDS = 3600.0  # one resource's longest wait (a VM's first boot is far shorter)
POLL_CAP_SECONDS = 2.0  # poll at least this often, whatever Retry-After says
_TERMINAL = {"succeeded", "failed", "canceled"}
_RUNNING: set[asyncio.Task] = set()  # keeps the tasks referenced until they end


class ResourceFailed(Exception):
    def __init__(self, error: dict, status: int | None = None) -> None:
        super().__init__(error.get("message", ""))
        self.error = error
        self.status = status


@dataclass
class Outcome:
    """How one resource went: a deployment operation."""

    resource: PlannedResource
    state: str = "Running"
    status_code: str | None = None
    error: dict | None = None
    started: str = ""
    ended: str | None = None
    duration: float = 0.0


class Caller:
    """Galley's ARM API, in process, as the principal whose token this is."""

    def __init__(self, app, authorization: str, base_url: str, request_id: str | None = None) -> None:
        headers = {"Authorization": authorization}
        if request_id:
            headers["x-ms-correlation-request-id"] = request_id
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url.rstrip("/"),
                                        headers=headers, timeout=None)

    async def close(self) -> None:
        await self.client.aclose()

    async def get(self, resource_id: str, api_version: str) -> dict:
        response = await self.client.get(resource_id, params={"api-version": api_version})
        if response.status_code >= 400:
            raise ResourceFailed(_error_of(response), response.status_code)
        return response.json()

    async def apply(self, resource_id: str, api_version: str, body: dict) -> str:
        """PUT the resource and follow its answer until it ends; its final HTTP status code."""
        response = await self.client.put(resource_id, params={"api-version": api_version}, json=body)
        if response.status_code >= 400:
            raise ResourceFailed(_error_of(response), response.status_code)
        deadline = time.monotonic() + MAX_RESOURCE_SECONDS
        status_url = response.headers.get("Azure-AsyncOperation")
        location = response.headers.get("Location")
        if status_url:
            await self._follow_status(status_url, response, deadline)
        elif response.status_code == 202 and location:
            await self._follow_location(location, response, deadline)
        else:
            state = str((_json(response).get("properties") or {}).get("provisioningState", "Succeeded"))
            while state.lower() not in _TERMINAL:
                await _wait(response, deadline)
                response = await self.client.get(resource_id, params={"api-version": api_version})
                if response.status_code >= 400:
                    raise ResourceFailed(_error_of(response), response.status_code)
                state = str((_json(response).get("properties") or {}).get("provisioningState", "Succeeded"))
            if state.lower() != "succeeded":
                raise ResourceFailed({"code": "ResourceDeploymentFailure",
                                      "message": f"The resource provision operation did not complete successfully: "
                                                 f"provisioningState is {state}."})
        return _STATUS_TEXT.get(response.status_code, str(response.status_code))

    async def _follow_status(self, url: str, response: httpx.Response, deadline: float) -> None:
        while True:
            await _wait(response, deadline)
            response = await self.client.get(_local(url))
            if response.status_code >= 400:
                raise ResourceFailed(_error_of(response), response.status_code)
            body = _json(response)
            status = str(body.get("status", "")).lower()
            if status == "succeeded":
                return
            if status in _TERMINAL:
                raise ResourceFailed(body.get("error") or {"code": "ResourceDeploymentFailure",
                                                           "message": f"The operation ended {body.get('status')}."})

    async def _follow_location(self, url: str, response: httpx.Response, deadline: float) -> None:
        while response.status_code == 202:
            await _wait(response, deadline)
            response = await self.client.get(_local(url))
        if response.status_code >= 400:
            raise ResourceFailed(_error_of(response), response.status_code)


_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "NoContent"}


def _local(url: str) -> str:
    """An operation URL Galley answered (with its public address) as a path on the in-process client."""
    parsed = httpx.URL(url)
    return parsed.raw_path.decode()


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_of(response: httpx.Response) -> dict:
    error = _json(response).get("error")
    if isinstance(error, dict) and error.get("code"):
        return {k: v for k, v in error.items() if v is not None}
    return {"code": "ResourceDeploymentFailure",
            "message": f"The request answered HTTP {response.status_code}: {response.text[:300]}"}


async def _wait(response: httpx.Response, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise ResourceFailed({"code": "ResourceDeploymentFailure",
                              "message": f"The resource did not finish within {MAX_RESOURCE_SECONDS:.0f} seconds."})
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    await asyncio.sleep(max(0.1, min(seconds, POLL_CAP_SECONDS)))


async def run(template: Template, plan: list[PlannedResource], caller: Caller, report) -> tuple[list[Outcome], dict | None]:
    """Apply the plan; `report(outcomes)` is awaited whenever a resource starts or ends.
    Returns every resource's outcome and the outputs (None when something failed)."""
    outcomes: list[Outcome] = []
    failed: set[str] = set()
    for wave in waves(plan):
        runnable = [item for item in wave if not (item.depends_on & failed)]
        for item in wave:
            if item not in runnable:
                failed.add(item.key)  # never attempted: what it needs did not come to be
        started = [Outcome(item, started=iso(utc_now())) for item in runnable]
        outcomes.extend(started)
        await report(outcomes)
        await asyncio.gather(*(_apply_one(template, caller, outcome) for outcome in started))
        failed.update(o.resource.key for o in started if o.state != "Succeeded")
        await report(outcomes)
    if failed:
        return outcomes, None
    return outcomes, await template.evaluate_outputs()


async def _apply_one(template: Template, caller: Caller, outcome: Outcome) -> None:
    item = outcome.resource
    began = time.monotonic()
    try:
        body = await template.body_of(item)
        outcome.status_code = await caller.apply(item.id, item.api_version, body)
        outcome.state = "Succeeded"
    except TemplateError as error:
        outcome.state, outcome.error = "Failed", error.to_body()["error"] | {"target": item.id}
    except ResourceFailed as error:
        outcome.state, outcome.error = "Failed", error.error
        outcome.status_code = _STATUS_TEXT.get(error.status, "BadRequest" if error.status == 400 else
                                               str(error.status)) if error.status else None
    outcome.ended = iso(utc_now())
    outcome.duration = time.monotonic() - began


def start(coroutine) -> asyncio.Task:
    task = asyncio.get_running_loop().create_task(coroutine)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return task


def reference_reader(caller: Caller, known_api_version: Any):
    """reference(): read a resource through the API with the template's or a known api-version."""
    async def read(resource_id: str, api_version: str | None) -> dict:
        try:
            return await caller.get(resource_id, api_version or known_api_version(resource_id))
        except ResourceFailed as error:
            raise TemplateError(f"reference('{resource_id}') failed: {error.error.get('message')}") from None
    return read
