"""`galley image builder …`: VM Image Builder templates (Microsoft.VirtualMachineImages/imageTemplates),
shaped like `az image builder`: create (from flags or a template file), show, list, delete, run, cancel,
show-runs, and `logs` (Galley's extension: the last run's customization.log, optionally followed).

The JSON body is built by plain functions (`image_source`, `customizers`, `distributors`, `template_body`)
so that it can be tested without a server."""

import codecs
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import DEFAULT_POLL_SECONDS, ArmError, error_from_response
from galley.cli.common import (
    LocationOpt, NameOpt, NoWaitOpt, ResourceGroupOpt, Session, TagsOpt, arm_command, given, group_location,
    usage_error, with_tags,
)
from galley.cli.image_version import compute_id
from galley.cli.kinds import OPTIONAL_RESOURCE_GROUP, RESOURCE_GROUP, Kind, option
from galley.cli.output import GROUP, LOCATION, NAME, STATE, field
from galley.cli.transfer import local_file_errors, show_progress

API_IMAGE_BUILDER = "2025-10-01"
PROVIDER = "Microsoft.VirtualMachineImages"
ACTIVE_RUN_STATES = ("Running", "Canceling")
FAILED_RUN_STATES = ("Failed", "Canceled")

app = typer.Typer(help="Manage and build image builder templates.", no_args_is_help=True)


def template_path(sub: str, rg: Optional[str], name: Optional[str] = None) -> str:
    """A template, or the collection of a group (or of the subscription when rg is None)."""
    base = f"/subscriptions/{sub}/resourceGroups/{rg}" if rg else f"/subscriptions/{sub}"
    collection = f"{base}/providers/{PROVIDER}/imageTemplates"
    return f"{collection}/{name}" if name else collection


COLUMNS = (
    NAME, GROUP, LOCATION, STATE,
    ("RunState", field("properties.lastRunStatus.runState")),
    ("RunSubState", field("properties.lastRunStatus.runSubState")),
)
RUN_STATUS_COLUMNS = (
    ("RunState", field("runState")), ("RunSubState", field("runSubState")), ("StartTime", field("startTime")),
    ("EndTime", field("endTime")), ("Message", field("message")),
)
RUN_OUTPUT_COLUMNS = (
    NAME, ("ProvisioningState", field("properties.provisioningState")),
    ("ArtifactId", field("properties.artifactId")), ("ArtifactUri", field("properties.artifactUri")),
)
TEMPLATES = Kind(app, API_IMAGE_BUILDER, COLUMNS, keys=(RESOURCE_GROUP, option("name", NameOpt)),
                 path=template_path, list_keys=(OPTIONAL_RESOURCE_GROUP,), list_path=template_path)

# -- body building -----------------------------------------------------------------


def image_source(sub: str, rg: str, value: str) -> dict:
    """--image-source: a URN Publisher:Offer:Sku:Version (PlatformImage), a gallery image version id
    (SharedImageVersion), or a managed image id or name in -g (ManagedImage)."""
    if paths.is_resource_id(value):
        types = paths.compute_types(value)
        if types == ["galleries", "images", "versions"]:
            return {"type": "SharedImageVersion", "imageVersionId": value}
        if types == ["images"]:
            return {"type": "ManagedImage", "imageId": value}
        raise usage_error(f"--image-source {value!r} is neither a managed image nor a gallery image version id.")
    if ":" in value:
        parts = value.split(":")
        if len(parts) != 4 or not all(part.strip() for part in parts):
            raise usage_error(f"--image-source: expected a URN Publisher:Offer:Sku:Version, not {value!r}.")
        return {"type": "PlatformImage", **dict(zip(("publisher", "offer", "sku", "version"), parts))}
    return {"type": "ManagedImage", "imageId": compute_id(sub, rg, "images", value)}


def customizers(scripts: Optional[list[str]]) -> Optional[list[dict]]:
    """--scripts: an http(s) URI is a script to download, anything else one inline command."""
    steps = []
    for script in [script for script in scripts or [] if script]:
        if script.startswith(("http://", "https://")):
            steps.append({"type": "Shell", "scriptUri": script})
        else:
            steps.append({"type": "Shell", "inline": [script]})
    return steps or None


def split_destination(text: str, option_name: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key.strip():
        raise usage_error(f"{option_name}: expected KEY=VALUE, not {text!r}.")
    return key.strip(), value.strip()


def managed_image_distributor(sub: str, rg: str, text: str, location: str, output_name: Optional[str]) -> dict:
    """'NAME=REGION' (or an image id = region): a managed image to create; REGION defaults to `location`."""
    image, region = split_destination(text, "--managed-image-destinations")
    image_id = compute_id(sub, rg, "images", image)
    return {"type": "ManagedImage", "imageId": image_id, "location": region or location,
            "runOutputName": output_name or image_id.rsplit("/", 1)[-1]}


def shared_image_distributor(sub: str, rg: str, text: str, output_name: Optional[str]) -> dict:
    """'GALLERY/DEFINITION=REGION1,REGION2' (or a definition id = regions): a new gallery image version
    replicated to those regions (the gallery's own region when none are given)."""
    key, regions = split_destination(text, "--shared-image-destinations")
    if paths.is_resource_id(key):
        definition_id = key
    else:
        gallery, slash, definition = key.partition("/")
        if not slash or not gallery or not definition or "/" in definition:
            raise usage_error(f"--shared-image-destinations: expected GALLERY/DEFINITION=REGION[,REGION...] "
                              f"or a definition id, not {text!r}.")
        definition_id = paths.image_definition(sub, rg, gallery, definition)
    distributor: dict = {"type": "SharedImage", "galleryImageId": definition_id,
                         "runOutputName": output_name or definition_id.rsplit("/", 1)[-1]}
    names = [region.strip() for region in regions.split(",") if region.strip()]
    if names:
        distributor["targetRegions"] = [{"name": name} for name in names]
    return distributor


def distributors(sub: str, rg: str, location: str, *, managed: Optional[list[str]] = None,
                 shared: Optional[list[str]] = None, vhd: bool = False,
                 output_name: Optional[str] = None) -> list[dict]:
    result = [managed_image_distributor(sub, rg, text, location, output_name) for text in managed or [] if text]
    result += [shared_image_distributor(sub, rg, text, output_name) for text in shared or [] if text]
    if vhd:
        result.append({"type": "VHD", "runOutputName": output_name or "vhd"})
    return result


def identity(sub: str, rg: str, values: Optional[list[str]]) -> Optional[dict]:
    """--identity: user-assigned identities, by id or by name in -g."""
    names = [value for value in values or [] if value]
    if not names:
        return None
    ids = [value if paths.is_resource_id(value) else
           f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{value}"
           for value in names]
    return {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {} for identity_id in ids}}


def template_file_body(path: Path) -> dict:
    """--image-template: a full ARM body ({location, tags, identity, properties, ...}) or its properties."""
    with local_file_errors(path):
        text = path.read_text()
    try:
        document = json.loads(text)
    except ValueError as error:
        raise usage_error(f"--image-template {path} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise usage_error(f"--image-template {path} must hold a JSON object.")
    if not isinstance(document.get("properties"), dict):
        return {"properties": document}
    return {key: document[key] for key in ("location", "tags", "identity", "properties") if key in document}


# -- commands ---------------------------------------------------------------------------

ImageTemplateOpt = Annotated[Optional[Path], typer.Option(
    "--image-template", dir_okay=False, help="Template JSON file: a full ARM body or just its properties. "
    "Only -g, -n, -l and --no-wait go with it.")]
ImageSourceOpt = Annotated[Optional[str], typer.Option(
    "--image-source", "-i", help="Source: a URN Publisher:Offer:Sku:Version, a managed image (id, or name in -g) "
    "or a gallery image version id.")]
ScriptsOpt = Annotated[Optional[list[str]], typer.Option(
    "--scripts", help="Space-separated customizations, run in order: an http(s) URI is a shell script to "
    "download and run, anything else a shell command.")]
ManagedDestinationsOpt = Annotated[Optional[list[str]], typer.Option(
    "--managed-image-destinations", help="Space-separated managed images to create: IMAGE=REGION, IMAGE a "
    "name in -g or an image id; REGION defaults to the template's.")]
SharedDestinationsOpt = Annotated[Optional[list[str]], typer.Option(
    "--shared-image-destinations", help="Space-separated gallery image definitions to publish a version to: "
    "GALLERY/DEFINITION=REGION1,REGION2 (GALLERY in -g) or DEFINITION_ID=REGIONS.")]
VhdOpt = Annotated[bool, typer.Option("--vhd", help="Also distribute the result as a VHD.")]
OutputNameOpt = Annotated[Optional[str], typer.Option(
    "--output-name", help="Run output name of the destinations. Default: the image (definition) name, or 'vhd'.")]
BuildTimeoutOpt = Annotated[Optional[int], typer.Option(
    "--build-timeout", min=0, max=960, help="Build timeout in minutes (0 or omitted: 240).")]
OsDiskSizeOpt = Annotated[Optional[int], typer.Option("--os-disk-size", min=0, help="OS disk size of the build VM, in GiB.")]
VmSizeOpt = Annotated[Optional[str], typer.Option("--vm-size", help="Size of the build VM.")]
IdentityOpt = Annotated[Optional[list[str]], typer.Option(
    "--identity", help="User-assigned identity of the template (id, or name in -g).")]


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    image_template: ImageTemplateOpt = None,
    image_source_: ImageSourceOpt = None,
    scripts: ScriptsOpt = None,
    managed_image_destinations: ManagedDestinationsOpt = None,
    shared_image_destinations: SharedDestinationsOpt = None,
    vhd: VhdOpt = False,
    output_name: OutputNameOpt = None,
    build_timeout: BuildTimeoutOpt = None,
    os_disk_size: OsDiskSizeOpt = None,
    vm_size: VmSizeOpt = None,
    identity_: IdentityOpt = None,
    location: LocationOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create an image builder template from a template file or from flags."""
    sub = session.subscription
    if image_template is not None:
        flags = given(**{"--image-source": image_source_, "--scripts": scripts, "--output-name": output_name,
                         "--managed-image-destinations": managed_image_destinations,
                         "--shared-image-destinations": shared_image_destinations, "--tags": tags,
                         "--build-timeout": build_timeout, "--os-disk-size": os_disk_size,
                         "--vm-size": vm_size, "--identity": identity_, "--vhd": vhd or None})
        if flags:
            raise usage_error(f"--image-template holds the whole template; drop {', '.join(flags)}.")
        body = template_file_body(image_template)
        body["location"] = location or body.get("location") or group_location(session, resource_group)
    else:
        if not image_source_:
            raise usage_error("give --image-source (or the whole template with --image-template).")
        where = location or group_location(session, resource_group)
        vm_profile = given(vmSize=vm_size, osDiskSizeGB=os_disk_size)
        properties = given(
            source=image_source(sub, resource_group, image_source_),
            customize=customizers(scripts),
            distribute=distributors(sub, resource_group, where, managed=managed_image_destinations,
                                    shared=shared_image_destinations, vhd=vhd, output_name=output_name),
            buildTimeoutInMinutes=build_timeout,
            vmProfile=vm_profile or None,
        )
        body = with_tags(given(location=where, identity=identity(sub, resource_group, identity_),
                               properties=properties), tags)
    return session.client.put(template_path(sub, resource_group, name), API_IMAGE_BUILDER, body, no_wait=no_wait)


TEMPLATES.add_show("Show an image builder template.")
TEMPLATES.add_list("List image builder templates in a resource group, or in the subscription without -g.")
TEMPLATES.add_delete("Delete an image builder template (not while it runs: cancel first).")


def run_status(template: dict) -> dict:
    return field("properties.lastRunStatus")(template) or {}


def wait_for_run(session: Session, path: str) -> dict:
    """GET the template until its last run has ended; that run's status. On a terminal, each change of
    state is written to stderr."""
    seen = None
    while True:
        status = run_status(session.client.get(path, API_IMAGE_BUILDER))
        state = (status.get("runState"), status.get("runSubState"))
        if state != seen and show_progress() and not session.only_show_errors:
            sys.stderr.write(f"{state[0] or 'NotRun'}{f' ({state[1]})' if state[1] else ''}\n")
        seen = state
        if state[0] not in ACTIVE_RUN_STATES:
            return status
        session.client.sleep(DEFAULT_POLL_SECONDS)


@arm_command(app, "run", RUN_STATUS_COLUMNS)
def run(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, no_wait: NoWaitOpt = False):
    """Build the image: start a run, wait until it ends and print its lastRunStatus.

    Exits with code 1 when the run ends Failed or Canceled."""
    path = template_path(session.subscription, resource_group, name)
    session.client.post(path + "/run", API_IMAGE_BUILDER, no_wait=True)
    if no_wait:
        return None
    status = wait_for_run(session, path)
    if status.get("runState") in FAILED_RUN_STATES:
        session.emit(status, RUN_STATUS_COLUMNS)
        message = status.get("message") or "see `galley image builder logs` for why."
        sys.stderr.write(f"ERROR: the run of image template {name!r} ended {status['runState']}: {message}\n")
        raise typer.Exit(1)
    return status


@arm_command(app, "cancel", RUN_STATUS_COLUMNS)
def cancel(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, no_wait: NoWaitOpt = False):
    """Cancel the running build of a template; wait until it has stopped and print its lastRunStatus."""
    path = template_path(session.subscription, resource_group, name)
    session.client.post(path + "/cancel", API_IMAGE_BUILDER, no_wait=True)
    return None if no_wait else wait_for_run(session, path)


@arm_command(app, "show-runs", RUN_OUTPUT_COLUMNS)
def show_runs(
    session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt,
    output_name: Annotated[Optional[str], typer.Option("--output-name", help="Show only this run output.")] = None,
):
    """Show what the last run produced: its run outputs (artifact ids), or the one named --output-name."""
    path = template_path(session.subscription, resource_group, name) + "/runOutputs"
    if output_name:
        return session.client.get(f"{path}/{output_name}", API_IMAGE_BUILDER)
    return session.client.list(path, API_IMAGE_BUILDER)


@arm_command(app, "logs")
def logs(
    session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing the log as it grows, until the run ends.")] = False,
):
    """Print the customization log of the template's last run (Galley extension)."""
    path = template_path(session.subscription, resource_group, name)
    if not run_status(session.client.get(path, API_IMAGE_BUILDER)):
        raise ArmError("NotFound", f"image template {name!r} has not run yet, so it has no log. Start a build "
                       f"with `galley image builder run -g {resource_group} -n {name}`.", target=name)
    try:
        print_log(session, path, follow)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def print_log(session: Session, path: str, follow: bool) -> None:
    """Copy the log to stdout from the logs endpoint, asking for what comes after the bytes already
    printed; with `follow`, until the run has ended and every byte is out."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    while True:
        response = session.client.send("GET", path + "/logs", API_IMAGE_BUILDER, params={"offset": offset},
                                        allow=(404,))
        if response.status_code == 404:  # no log yet: a queued run has not written one
            run_state = run_status(session.client.get(path, API_IMAGE_BUILDER)).get("runState")
            if not follow or run_state not in ACTIVE_RUN_STATES:
                raise error_from_response(response)
            session.client.sleep(DEFAULT_POLL_SECONDS)
            continue
        piece = response.content
        offset += len(piece)
        sys.stdout.write(decoder.decode(piece))
        sys.stdout.flush()
        size = int(response.headers.get("X-Galley-Log-Size") or offset)
        complete = offset >= size or not piece
        if complete and (not follow or response.headers.get("X-Galley-Run-State") not in ACTIVE_RUN_STATES):
            break
        if complete:
            session.client.sleep(DEFAULT_POLL_SECONDS)
    sys.stdout.write(decoder.decode(b"", final=True))
    sys.stdout.flush()
