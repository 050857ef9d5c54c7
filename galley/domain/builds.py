"""Starting, canceling and reporting image template runs (the records; the build is a job).

A run is an Operation with action "run" on the template; a cancel is one with action "cancel".
Both are queued here and finished by the build pipeline's job handler (galley/jobs), which reads
the template's lastRunStatus and writes it back as the run moves on, and records what each
distribute target produced as a run output.
"""

from __future__ import annotations

from . import image_template
from .errors import NotFound
from .ids import IMAGE_TEMPLATE_TYPE
from .image_template import RunOutput
from .resource import Operation, Resource
from .service import ResourceService

RUN, CANCEL = "run", "cancel"


def start_run(service: ResourceService, template_id: str) -> Operation:
    """Queue a build of the template: lastRunStatus becomes Running/Queued."""
    with service._writing() as tx:  # pylint: disable=protected-access  (wakes the worker)
        template = _template(tx, template_id)
        image_template.start_run(template)
        tx.save(template)
        return _queue(tx, template, RUN)


def cancel_run(service: ResourceService, template_id: str) -> Operation:
    """Ask the queued or running build to stop: lastRunStatus becomes Canceling."""
    with service._writing() as tx:  # pylint: disable=protected-access
        template = _template(tx, template_id)
        image_template.request_cancel(template)
        tx.save(template)
        return _queue(tx, template, CANCEL)


def run_outputs(service: ResourceService, template_id: str) -> tuple[Resource, list[RunOutput]]:
    with service.store.read() as tx:
        template = _template(tx, template_id)
        return template, tx.run_outputs(template.id)


def run_output(service: ResourceService, template_id: str, name: str) -> tuple[Resource, RunOutput]:
    with service.store.read() as tx:
        template = _template(tx, template_id)
        found = tx.run_output(template.id, name)
    if found is None:
        raise NotFound(f"Image template '{template.name}' has no run output named '{name}'. Run outputs "
                       "appear once a run has distributed to the target with that runOutputName.",
                       target=name)
    return template, found


def _template(tx, template_id: str) -> Resource:
    template = tx.get(template_id)
    if template is None or template.type != IMAGE_TEMPLATE_TYPE:
        raise NotFound(f"The resource 'imageTemplates' '{template_id}' was not found.", target=template_id)
    return template


def _queue(tx, template: Resource, action: str) -> Operation:
    operation = Operation(resource_id=template.id, resource_type=template.type, action=action,
                          region=template.location or "global", subscription_id=template.subscription_id)
    tx.add_operation(operation)
    return operation
