"""Deployments from start to end: check the template, record the run, apply it in the background.

`prepare` does everything that can fail before anything changes (a bad template, parameters,
an unknown type or function, a dependency cycle: 400 InvalidTemplate, nothing recorded);
`start` records the run as Accepted and applies it in a task of this process (see runner.py);
the task writes each resource's progress and the end state to the record.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from ..domain.errors import ArmError, InvalidParameter, ResourceGroupNotFound
from ..domain.ids import resource_group_id
from ..domain.kinds import KINDS
from ..domain.ports import Store
from ..domain.resource import Resource
from . import records, runner
from .expressions import TemplateError
from .template import DEPLOYMENT_TYPE, Context, PlannedResource, Template, waves

log = logging.getLogger(__name__)
DEPLOYABLE_TYPES = frozenset(KINDS) | {DEPLOYMENT_TYPE}
_TASKS: dict[str, asyncio.Task] = {}  # deployment id (lower-case) → its run in this process


@dataclass
class Prepared:
    template: Template
    plan: list[PlannedResource]
    properties: dict  # what the record keeps of the request


async def prepare(store: Store, subscription_id: str, group: str, name: str, body: dict) -> Prepared:
    records.check_name(name)
    props = body.get("properties")
    if not isinstance(props, dict):
        raise InvalidParameter("The request needs 'properties' with a template, parameters and mode.",
                               target="properties")
    mode = props.get("mode", "Incremental")
    if not isinstance(mode, str) or mode.lower() != "incremental":
        raise InvalidParameter(f"Deployment mode '{mode}' is not supported: Galley deploys in Incremental mode "
                               "only (Complete would delete the group's resources the template does not name).",
                               code="InvalidDeploymentMode", target="properties.mode")
    if "templateLink" in props or "parametersLink" in props:
        raise InvalidParameter("templateLink and parametersLink are not supported: send the template and parameters "
                               "themselves.", target="properties.templateLink")
    with store.read() as tx:
        group_row = tx.get(resource_group_id(subscription_id, group))
        tenant = tx.tenant_of_subscription(subscription_id)
    if group_row is None:
        raise ResourceGroupNotFound(f"Resource group '{group}' could not be found.", target="resourceGroupName")
    context = Context(subscription_id=subscription_id, resource_group=group_row.name, location=group_row.location,
                      deployment_name=name, tenant_id=tenant, resource_group_tags=group_row.tags)
    template = Template(props.get("template"), props.get("parameters"), context, DEPLOYABLE_TYPES)
    await template.bind_parameters()
    plan = await template.plan()
    waves(plan)  # a dependency cycle is refused now
    raw = props.get("template")
    kept = {"mode": "Incremental", "templateHash": records.template_hash(raw),
            "parameters": records.shown_parameters(props.get("parameters") or {}, raw)}
    return Prepared(template, plan, kept)


def validated(prepared: Prepared, record_id: str, name: str) -> dict:
    """The answer of POST …/validate: the template holds, and what it would deploy."""
    return {"id": record_id, "name": name, "type": DEPLOYMENT_TYPE,
            "properties": {**prepared.properties, "provisioningState": "Succeeded",
                           "validatedResources": [{"id": p.id} for p in prepared.plan]}}


async def start(store: Store, app, authorization: str, base_url: str, subscription_id: str, group: str,
                name: str, prepared: Prepared) -> Resource:
    record = await run_in_threadpool(records.begin, store, subscription_id, group, name, prepared.properties)
    caller = runner.Caller(app, authorization, base_url, record.properties["correlationId"])
    versions = {p.key: p.api_version for p in prepared.plan}

    def api_version_of(resource_id: str) -> str:
        version = versions.get(resource_id.lower())
        if version is None:
            raise TemplateError(f"reference('{resource_id}') names a resource outside the template: give its "
                                "api-version as reference()'s second argument.")
        return version

    prepared.template.context.read = runner.reference_reader(caller, api_version_of)
    task = runner.start(_run(store, record.id, prepared, caller))
    _TASKS[record.key] = task
    task.add_done_callback(lambda _t: _TASKS.pop(record.key, None))
    return record


async def cancel(store: Store, record_id: str) -> bool:
    canceled = await run_in_threadpool(records.cancel, store, record_id)
    task = _TASKS.get(record_id.lower())
    if canceled and task is not None:
        task.cancel()
    return canceled


async def _run(store: Store, record_id: str, prepared: Prepared, caller: runner.Caller) -> None:
    async def report(outcomes) -> None:
        await run_in_threadpool(records.progress, store, record_id, records.RUNNING, outcomes)

    outcomes: list[runner.Outcome] = []
    try:
        await report([])
        outcomes, outputs = await runner.run(prepared.template, prepared.plan, caller, report)
        failed = [o for o in outcomes if o.state != "Succeeded"]
        if not failed:
            await run_in_threadpool(records.progress, store, record_id, records.SUCCEEDED, outcomes, outputs=outputs)
            return
        error = {"code": "DeploymentFailed",
                 "message": f"At least one resource deployment operation failed "
                            f"({', '.join(o.resource.name for o in failed)}). List the deployment's operations "
                            "(GET …/deployments/{name}/operations) for details.",
                 "details": [_detail(o) for o in failed]}
        await run_in_threadpool(records.progress, store, record_id, records.FAILED, outcomes, error=error)
    except asyncio.CancelledError:
        raise
    except ArmError as error:  # an output that cannot be evaluated
        await run_in_threadpool(records.progress, store, record_id, records.FAILED, outcomes,
                                error={**error.to_body()["error"], "target": record_id})
    except Exception as error:
        log.exception("deployment %s failed unexpectedly", record_id)
        await run_in_threadpool(records.progress, store, record_id, records.FAILED, outcomes, error={
            "code": "InternalServerError", "message": f"The deployment stopped on an internal error: {error}"})
    finally:
        await caller.close()


def _detail(outcome: runner.Outcome) -> dict:
    """A failed resource's error, aimed at the resource (its own target, if any, one level down)."""
    error = outcome.error or {}
    detail = {"code": error.get("code", "ResourceDeploymentFailure"), "message": error.get("message", ""),
              "target": outcome.resource.id}
    if error.get("target") not in (None, outcome.resource.id) or error.get("details"):
        detail["details"] = [error]
    return detail
