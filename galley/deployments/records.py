"""What is remembered of a deployment, and how it is answered (DeploymentExtended, and its
operations: one per template resource).

A deployment is a row like any resource (type Microsoft.Resources/deployments, in its resource
group, gone with the group). Kept: the mode, the parameters (securestring and secureObject values
never: only their type), the template's hash, state, timing, outputs, the resources it made and
each resource's operation. Not kept: the template itself and the caller's token. Bookkeeping
(which process runs it, the operations) sits in hidden properties that are never rendered.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime

from .. import uploads
from ..domain.errors import Conflict, InvalidParameter, NotFound, ResourceGroupNotFound
from ..domain.ids import resource_group_id
from ..domain.ports import Store
from ..domain.resource import Resource, iso, utc_now
from .runner import Outcome
from .template import DEPLOYMENT_TYPE

ACCEPTED, RUNNING, SUCCEEDED, FAILED, CANCELED = "Accepted", "Running", "Succeeded", "Failed", "Canceled"
ACTIVE = (ACCEPTED, RUNNING)
_NAME = re.compile(r"[-\w.()]{1,64}")
_RUNNER, _OPERATIONS = "_runner", "_operations"


def deployment_id(subscription_id: str, group: str, name: str) -> str:
    return f"{resource_group_id(subscription_id, group)}/providers/{DEPLOYMENT_TYPE}/{name}"


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidParameter(f"Deployment name '{name}' is invalid: use 1-64 letters, digits, underscores, "
                               "hyphens, periods and parentheses.", code="InvalidDeploymentName",
                               target="deploymentName")


def template_hash(template: object) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return str(int.from_bytes(digest[:8], "big"))


def shown_parameters(parameters: dict, template: dict) -> dict:
    """The parameters as a deployment answers them: each value with its type, secure ones without."""
    specs = {k.lower(): v for k, v in (template.get("parameters") or {}).items() if isinstance(v, dict)}
    shown = {}
    for name, entry in (parameters or {}).items():
        kind = str(specs.get(name.lower(), {}).get("type", "String"))
        if kind.lower() in ("securestring", "secureobject"):
            shown[name] = {"type": "SecureString" if kind.lower() == "securestring" else "SecureObject"}
        else:
            shown[name] = {"type": kind[:1].upper() + kind[1:], "value": entry.get("value")}
    return shown


def begin(store: Store, subscription_id: str, group: str, name: str, properties: dict) -> Resource:
    """Record a new run of the deployment (Accepted), replacing an ended one of the same name."""
    check_name(name)
    record_id = deployment_id(subscription_id, group, name)
    with store.write() as tx:
        group_row = tx.get(resource_group_id(subscription_id, group))
        if group_row is None:
            raise ResourceGroupNotFound(f"Resource group '{group}' could not be found.", target="resourceGroupName")
        existing = tx.get(record_id)
        if existing is not None and _is_active(existing):
            raise Conflict(f"The deployment '{name}' cannot be saved, because this would overwrite an existing "
                           "deployment which is still active; wait for it to end or cancel it.",
                           code="DeploymentActive", target=record_id)
        record = Resource(id=record_id, type=DEPLOYMENT_TYPE, name=name, subscription_id=subscription_id.lower(),
                          resource_group=group, location=None, provisioning_state=ACCEPTED,
                          properties={**properties, "correlationId": str(uuid.uuid4()), "timestamp": iso(utc_now()),
                                      "duration": "PT0S", _RUNNER: uploads.this_process(), _OPERATIONS: []})
        if existing is not None:
            tx.delete(record_id)
        tx.insert(record)
        return record


def progress(store: Store, record_id: str, state: str, outcomes: list[Outcome], *, outputs: dict | None = None,
             error: dict | None = None) -> None:
    with store.write() as tx:
        record = tx.get(record_id)
        if record is None or record.provisioning_state == CANCELED:
            return  # deleted meanwhile (its group went), or canceled: nothing to report to
        record.provisioning_state = state
        props = record.properties
        props[_OPERATIONS] = [_operation(o) for o in outcomes]
        props["duration"] = _duration_since(props["timestamp"])
        made = [o.resource for o in outcomes if o.state == "Succeeded"]
        props["outputResources"] = [{"id": r.id} for r in made]
        props["dependencies"] = [{"id": r.id, "resourceType": r.type, "resourceName": r.name,
                                  "dependsOn": [{"id": d} for d in sorted(r.depends_on)]}
                                 for r in (o.resource for o in outcomes) if r.depends_on]
        props["providers"] = _providers(o.resource for o in outcomes)
        if outputs is not None:
            props["outputs"] = outputs
        if error is not None:
            props["error"] = error
        tx.save(record)


def fail_before_start(store: Store, record_id: str, error: dict) -> None:
    progress(store, record_id, FAILED, [], error=error)


def get(store: Store, record_id: str, name: str) -> Resource:
    with store.read_one() as tx:
        record = tx.get(record_id)
    if record is None or record.type != DEPLOYMENT_TYPE:
        raise NotFound(f"Deployment '{name}' could not be found.", code="DeploymentNotFound", target=record_id)
    if record.provisioning_state in ACTIVE and not uploads.owner_alive(record.properties.get(_RUNNER, "")):
        progress(store, record_id, FAILED, [], error={
            "code": "DeploymentInterrupted",
            "message": "The Galley process that ran this deployment ended before it finished. Resources it had "
                       "already applied stay as they are; send the deployment again to finish it (incremental "
                       "mode applies each resource again)."})
        with store.read_one() as tx:
            record = tx.get(record_id)
    return record


def cancel(store: Store, record_id: str) -> bool:
    """Mark an active deployment Canceled (True), or say it was not active (False)."""
    with store.write() as tx:
        record = tx.get(record_id)
        if record is None or not _is_active(record):
            return False
        record.provisioning_state = CANCELED
        record.properties["duration"] = _duration_since(record.properties["timestamp"])
        tx.save(record)
        return True


def delete(store: Store, record_id: str) -> bool:
    with store.write() as tx:
        record = tx.get(record_id)
        if record is None or record.type != DEPLOYMENT_TYPE:
            return False
        if _is_active(record):
            raise Conflict(f"Deployment '{record.name}' is still running; cancel it (POST …/cancel) or wait for "
                           "it to end before deleting it.", code="DeploymentActive", target=record_id)
        tx.delete(record_id)
        return True


def render(record: Resource) -> dict:
    props = {k: v for k, v in record.properties.items() if not k.startswith("_")}
    props["provisioningState"] = record.provisioning_state
    return {"id": record.id, "name": record.name, "type": DEPLOYMENT_TYPE, "properties": props}


def render_operations(record: Resource) -> list[dict]:
    return [{"id": f"{record.id}/operations/{op['operationId']}", **op}
            for op in record.properties.get(_OPERATIONS, [])]


def _is_active(record: Resource) -> bool:
    return record.provisioning_state in ACTIVE and uploads.owner_alive(record.properties.get(_RUNNER, ""))


def _operation(outcome: Outcome) -> dict:
    item = outcome.resource
    properties = {"provisioningOperation": "Create", "provisioningState": outcome.state,
                  "timestamp": outcome.ended or outcome.started,
                  "duration": f"PT{outcome.duration:.3f}S",
                  "targetResource": {"id": item.id, "resourceType": item.type, "resourceName": item.name,
                                     "apiVersion": item.api_version}}
    if outcome.status_code:
        properties["statusCode"] = outcome.status_code
    if outcome.error:
        properties["statusMessage"] = {"status": "Failed", "error": outcome.error}
    operation_id = hashlib.sha256(item.key.encode()).hexdigest()[:16].upper()
    return {"operationId": operation_id, "properties": properties}


def _providers(resources) -> list[dict]:
    by_namespace: dict[str, set[str]] = {}
    for r in resources:
        namespace, _, rest = r.type.partition("/")
        by_namespace.setdefault(namespace, set()).add(rest)
    return [{"namespace": ns, "resourceTypes": [{"resourceType": t, "locations": []} for t in sorted(types)]}
            for ns, types in sorted(by_namespace.items())]


def _duration_since(started: str) -> str:
    seconds = (utc_now() - datetime.fromisoformat(started)).total_seconds()
    return f"PT{seconds:.3f}S"
