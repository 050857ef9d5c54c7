"""One run of an image template, from its queued `run` operation to a final lastRunStatus.

    source      resolve the template's source now, and write its OS disk out as raw
    build       galley.builder.pipeline: copy, grow, customize in the sandbox, generalize
    validate    validate.inVMValidations, in the built image booted under QEMU
    distribute  managed images, gallery image versions, VHDs (see distribute.py)

Whatever happens the run ends in Succeeded, Failed or Canceled with a message a person can act
on, every cancel waiting on it is closed, and the work folder keeps only customization.log.
A run whose worker died (its operation is claimed again) starts over from a cleared folder;
after MAX_ATTEMPTS such restarts it fails instead.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ...builder.boot import BootCancelled
from ...builder.pipeline import LOG_NAME, BuildCancelled, BuildError, BuildLog, BuildSpec, BuildTimedOut, run_build
from ...domain.image_template import CANCELING, RUNNING
from ...domain.resource import CANCELED, FAILED, Operation
from ...observability import metrics
from ..context import JobContext
from . import distribute, identity, log_segments, source, status, validate, workspace
from .fetch import fetcher

log = logging.getLogger("galley.jobs.build")
MAX_ATTEMPTS = 3
SOURCE_NAME = "source.raw"


class RunCanceled(Exception):
    pass


class RunNotSucceeded(Exception):
    """Raised when a run ended Failed or Canceled, so that its `run` operation ends the same way
    (Azure's run LRO fails with the run, and the SDK's begin_run().result() raises)."""

    def __init__(self, run_state: str, message: str) -> None:
        super().__init__(message)
        self.code = "ImageTemplateRunCanceled" if run_state == status.CANCELED_RUN else "ImageTemplateRunFailed"
        self.operation_status = CANCELED if run_state == status.CANCELED_RUN else FAILED


def run_template(ctx: JobContext, operation: Operation) -> None:
    template_id = operation.resource_id
    last = status.current(ctx, template_id)
    if last is None or last.get("runState") not in (RUNNING, CANCELING):
        return  # the template was deleted, or this run has already ended
    folder = workspace.run_dir(ctx.home, template_id)
    undone = workspace.clear(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = _Run(ctx, template_id, folder, operation)
    try:
        if operation.attempts > 1:
            run.say(f"the server stopped during this run (attempt {operation.attempts} of {MAX_ATTEMPTS}); "
                    f"cleared what it left ({'; '.join(undone) or 'nothing'}) and starting over")
        if last["runState"] == CANCELING:
            run.end(status.CANCELED_RUN, "The run was canceled before its build started.")
        elif operation.attempts > MAX_ATTEMPTS:
            run.end(status.FAILED_RUN, f"The server stopped during this build {operation.attempts - 1} times; "
                                       "giving up. Look at the server's log, then run the template again.")
        else:
            run.execute()
    finally:
        run.close()
    if run.final_state in (status.FAILED_RUN, status.CANCELED_RUN):
        raise RunNotSucceeded(run.final_state, run.final_message)


def _log_shipper(ctx: JobContext, template_id: str, path: Path) -> log_segments.LogShipper | None:
    """The log's copy in the template's region store, read by `logs` on any node."""
    with ctx.sql.read() as tx:
        template = tx.get(template_id)
    if template is None:
        return None
    try:
        shipper = log_segments.LogShipper(log_segments.store_of(ctx.locations, template.location), template_id, path)
        shipper.start()
    except Exception as error:  # noqa: BLE001 - the build goes on; `logs` then answers on this node only
        log.warning("the build log of %s is kept on this node only: %r", template_id, error)
        return None
    return shipper


class _Run:
    def __init__(self, ctx: JobContext, template_id: str, folder: Path, operation: Operation) -> None:
        self.ctx = ctx
        self.template_id = template_id
        self.folder = folder
        self.log = BuildLog(folder / LOG_NAME, None)
        self.shipper = _log_shipper(ctx, template_id, folder / LOG_NAME)
        # The same in every attempt: an attempt after a dead node's knows what the run made before.
        self.run_id = operation.id.replace("-", "")[:8]
        self.attempt = operation.attempts
        self.phases: dict[str, float] = {}
        self._phase: tuple[str, float] | None = None
        self.started = time.monotonic()
        self.final_state: str | None = None
        self.final_message = ""

    def say(self, text: str) -> None:
        self.log.write("galley", text)

    def phase(self, sub_state: str, *, announce: bool = True) -> None:
        """Enter runSubState `sub_state` (the build pipeline announces its own in the log)."""
        if self._phase is not None and self._phase[0] == sub_state:
            return
        self._close_phase()
        self._phase = (sub_state, time.monotonic())
        if announce:
            self.say(f"runState Running, runSubState {sub_state}")
        status.enter_phase(self.ctx, self.template_id, sub_state)

    def _close_phase(self) -> None:
        if self._phase is not None:
            name, since = self._phase
            self.phases[name] = round(self.phases.get(name, 0.0) + time.monotonic() - since, 2)
            self._phase = None

    def end(self, run_state: str, message: str) -> None:
        self._close_phase()
        self.say(f"runState {run_state}: {message}")
        if self.phases:
            self.say(f"phases: {json.dumps(self.phases)} total {time.monotonic() - self.started:.2f} s")
        metrics.build_finished(self.phases, run_state, time.monotonic() - self.started)
        if self.shipper is not None:
            self.shipper.flush_quietly()  # every line in the store before any node can see the run ended
        status.finish(self.ctx, self.template_id, run_state, message)
        self.final_state, self.final_message = run_state, message

    def close(self) -> None:
        if self.final_state is None:  # an error nobody caught: never leave the run Running
            self.end(status.FAILED_RUN, "The run stopped on an internal error; see the server's log.")
        for name in (SOURCE_NAME, "image.raw"):
            (self.folder / name).unlink(missing_ok=True)
        self.log.close()
        if self.shipper is not None:
            self.shipper.stop()

    # ---- the run

    def execute(self) -> None:
        with self.ctx.sql.read() as tx:
            template = tx.get(self.template_id)
        props = template.properties
        self.say(f"run {self.run_id} of image template {template.name} started")
        distributor = distribute.Distributor(self.ctx, template, self.run_id, self.say, lambda: watch.check(),
                                             attempt=max(1, self.attempt))
        with status.CancelWatch(self.ctx, self.template_id) as watch:
            try:
                self._execute(template, props, watch, distributor)
            except (RunCanceled, BuildCancelled, BootCancelled, distribute.DistributionCanceled) as stopped:
                self.say(str(stopped))
                self.end(status.CANCELED_RUN, "The run was canceled; everything it started was stopped.")
            except BuildTimedOut as late:
                self.end(status.FAILED_RUN, f"Build timed out: {late}. Raise buildTimeoutInMinutes "
                                            f"(now {props['buildTimeoutInMinutes']}) or make the build shorter.")
            except BuildError as failed:
                self.end(status.FAILED_RUN, f"Build failed: {failed}.")
            except (source.SourceUnavailable, validate.ValidationFailed, distribute.DistributionFailed,
                    identity.IdentityDenied) as failed:
                self.end(status.FAILED_RUN, str(failed))
            except Exception as failed:  # report it on the run, keep the worker going
                log.exception("run of %s failed", self.template_id)
                self.end(status.FAILED_RUN, f"The run stopped on an internal error: {failed}")
            finally:
                distributor.remove_snapshots()

    def _execute(self, template, props: dict, watch: status.CancelWatch, distributor) -> None:
        fetch = fetcher(self.ctx)
        deadline = self.started + props["buildTimeoutInMinutes"] * 60
        self.phase("Building")
        identity.check_source(self.ctx, template)
        found = source.resolve(self.ctx, template)
        self.say(f"source: {found.description}")
        if props["source"]["type"] == "PlatformImage":
            self._record_exact_version(found.version)
        source_path = self.folder / SOURCE_NAME
        size = source.export_raw(self.ctx, found, source_path)
        self.say(f"source disk written out as raw: {size:,} bytes")
        self._check(watch)
        checks = props.get("validate") or {}
        validators = checks.get("inVMValidations") or []
        if checks.get("sourceValidationOnly"):
            self._validate(source_path, validators, fetch, deadline, watch, source_only=True)
            return
        vm_profile = props.get("vmProfile") or {}
        result = run_build(BuildSpec(source_path, props.get("customize") or [], vm_profile.get("osDiskSizeGB") or 0,
                                     max(0.1, (deadline - time.monotonic()) / 60), fetch,
                                     vm_size=vm_profile.get("vmSize")),
                           work_dir=self.folder, cancel=watch.event,
                           on_phase=lambda _state, sub_state: self.phase(sub_state, announce=False))
        source_path.unlink(missing_ok=True)
        failure = None
        if validators:
            failure = self._validate(result.image_path, validators, fetch, deadline, watch, source_only=False)
            if failure and not checks.get("continueDistributeOnFailure"):
                self.end(status.FAILED_RUN, f"{failure} Nothing was distributed (validate."
                                            "continueDistributeOnFailure is false).")
                return
        self.phase("Distributing")
        problems = self._distribute(template, props, distributor, result.image_path, found.version, watch)
        if failure:
            self.end(status.FAILED_RUN, f"{failure} The image was distributed anyway "
                                        "(validate.continueDistributeOnFailure)." + "".join(f" {p}" for p in problems))
        elif problems:
            self.end(status.FAILED_RUN, "Distribution failed: " + " ".join(problems))
        else:
            self.end(status.SUCCEEDED_RUN, f"The image was built and distributed to "
                                           f"{len(props['distribute'])} target(s).")

    def _validate(self, image: Path, validators: list[dict], fetch, deadline: float, watch, *,
                  source_only: bool) -> str | None:
        self.phase("Validating")
        if not validators:
            raise validate.ValidationFailed("validate.sourceValidationOnly is set but there are no "
                                            "inVMValidations to run.")
        outcome = validate.validate(image, validators, fetch, seconds_left=deadline - time.monotonic(),
                                    work_dir=self.folder, say=self.say, cancel=watch.event)
        failure = None if outcome.exit_code == 0 else (
            f"Validation failed: the in-VM validation exited with code {outcome.exit_code} (its output is in "
            "customization.log).")
        if source_only:
            if failure:
                self.end(status.FAILED_RUN, failure)
            else:
                self.end(status.SUCCEEDED_RUN, "The source image passed validation (sourceValidationOnly: "
                                               "nothing was built or distributed).")
        return failure

    def _distribute(self, template, props: dict, distributor, image: Path, source_version: str | None,
                    watch) -> list[str]:
        distributor.upload(image)
        problems = []
        for target in props["distribute"]:
            self._check(watch)
            name = target["runOutputName"]
            try:
                identity.check_target(self.ctx, template, target)
                if target["type"] == "ManagedImage":
                    output = distributor.managed_image(target)
                elif target["type"] == "SharedImage":
                    output = distributor.shared_image(target, source_version)
                else:
                    output = distributor.vhd(target)
            except distribute.DistributionCanceled:
                raise
            except (distribute.DistributionFailed, identity.IdentityDenied) as failed:
                problems.append(f"{target['type']} '{name}': {failed}.")
                self.say(f"distribute {name} failed: {failed}")
                output = distribute.RunOutput(name, "Failed")
            else:
                self.say(f"distributed {name}: {output.artifact_id or output.artifact_uri}")
            with self.ctx.sql.write() as tx:
                tx.save_run_output(self.template_id, output)
        return problems

    def _record_exact_version(self, version: str | None) -> None:
        with self.ctx.sql.write() as tx:
            template = tx.get(self.template_id)
            if template is not None:
                template.properties["source"]["exactVersion"] = version
                tx.save(template)

    def _check(self, watch: status.CancelWatch) -> None:
        if watch.check():
            raise RunCanceled("cancel requested: stopping the run")
