"""Image template actions beyond CRUD (which comes from its ResourceSpec): run, cancel, run outputs,
and (Galley's extension) the last run's customization.log."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...domain import builds, ids
from ...domain.errors import NotFound
from ...jobs.build import log_segments, workspace
from ...domain.image_template import RUN_OUTPUT_TYPE, RunOutput
from ...domain.names import check_resource_group_name, check_subscription_id
from ..api_versions import image_builder_api
from ..wire import accepted_response, json_response
from .resources import IMAGE_BUILDER, service_of

log = logging.getLogger("galley.api")
router = APIRouter(tags=["VirtualMachineImageTemplates"])
ITEM = IMAGE_BUILDER + "/imagetemplates/{imageTemplateName}"


def template_id(subscription_id: str, resource_group: str, name: str) -> str:
    check_subscription_id(subscription_id)
    check_resource_group_name(resource_group)
    return (f"{ids.resource_group_id(subscription_id, resource_group)}/providers/"
            f"{ids.IMAGE_TEMPLATE_TYPE}/{name}")


def render_run_output(template_id_: str, output: RunOutput) -> dict:
    return {"id": f"{template_id_}/runOutputs/{output.name}", "name": output.name, "type": RUN_OUTPUT_TYPE,
            "properties": {k: v for k, v in (("artifactId", output.artifact_id),
                                             ("artifactUri", output.artifact_uri),
                                             ("provisioningState", output.provisioning_state))
                           if v is not None}}


@router.post(ITEM + "/run", operation_id="VirtualMachineImageTemplates_Run", status_code=202)
def run(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
        api_version: str = Depends(image_builder_api)) -> Response:
    operation = builds.start_run(service_of(request),
                                 template_id(subscriptionId, resourceGroupName, imageTemplateName))
    return accepted_response(request, None, operation, api_version, 202)


@router.post(ITEM + "/cancel", operation_id="VirtualMachineImageTemplates_Cancel", status_code=202)
def cancel(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
           api_version: str = Depends(image_builder_api)) -> Response:
    operation = builds.cancel_run(service_of(request),
                                  template_id(subscriptionId, resourceGroupName, imageTemplateName))
    return accepted_response(request, None, operation, api_version, 202)


@router.get(ITEM + "/runoutputs", operation_id="VirtualMachineImageTemplates_ListRunOutputs")
def list_run_outputs(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                     api_version: str = Depends(image_builder_api)) -> Response:
    template, outputs = builds.run_outputs(
        service_of(request), template_id(subscriptionId, resourceGroupName, imageTemplateName))
    return json_response({"value": [render_run_output(template.id, o) for o in outputs]})


@router.get(ITEM + "/runoutputs/{runOutputName}", operation_id="VirtualMachineImageTemplates_GetRunOutput")
def get_run_output(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
                   runOutputName: str, api_version: str = Depends(image_builder_api)) -> Response:
    template, output = builds.run_output(
        service_of(request), template_id(subscriptionId, resourceGroupName, imageTemplateName), runOutputName)
    return json_response(render_run_output(template.id, output))


LOG_READ_LIMIT = 4 * 1024 * 1024


@router.get(ITEM + "/logs", operation_id="VirtualMachineImageTemplates_GetLog")
def get_log(request: Request, subscriptionId: str, resourceGroupName: str, imageTemplateName: str,
            offset: int = Query(0, ge=0, description="the byte of customization.log to start from"),
            api_version: str = Depends(image_builder_api)) -> Response:
    """customization.log of the last run, from `offset` (up to 4 MiB a call). The headers say how
    long the log is now and the run's state, so a client can follow it while the build runs."""
    template = service_of(request).get(template_id(subscriptionId, resourceGroupName, imageTemplateName),
                                       ids.IMAGE_TEMPLATE_TYPE)
    found = _shared_log(request, template, offset)
    try:
        data, size = found or _local_log(workspace.log_path(request.app.state.settings.home, template.id), offset)
    except FileNotFoundError:
        raise NotFound(f"Image template '{template.name}' has no build log yet: start a run (POST "
                       f".../imageTemplates/{template.name}/run).", target="logs") from None
    run_state = (template.properties.get("lastRunStatus") or {}).get("runState", "")
    return Response(data, media_type="text/plain; charset=utf-8",
                    headers={"X-Galley-Log-Size": str(size), "X-Galley-Run-State": run_state})


def _shared_log(request: Request, template, offset: int) -> tuple[bytes, int] | None:
    """The log's copy in the region's store, whichever node runs or ran the build."""
    try:
        store = log_segments.store_of(request.app.state.content.locations, template.location)
        return log_segments.read(store, template.id, offset, LOG_READ_LIMIT)
    except Exception as error:  # noqa: BLE001 - the store is unreachable: this node's own copy, if any
        log.warning("the build log of %s could not be read from its store: %r", template.id, error)
        return None


def _local_log(path, offset: int) -> tuple[bytes, int]:
    """The log in this node's build folder (a build from before logs were shipped to the store)."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(min(offset, size))
        return f.read(LOG_READ_LIMIT), size
