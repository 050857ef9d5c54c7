"""Image Builder templates (Microsoft.VirtualMachineImages/imageTemplates), seed 003.

A template says what to build from (source), what to do to it (customize, validate) and where
the result goes (distribute). Everything is checked when the template is submitted; what can
only be known when it runs (which platform image 'latest' is) is left to the run.

Galley builds Linux images only. Sources are managed images or gallery image versions held here,
or platform images named by publisher/offer/sku/version.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from dataclasses import dataclass

from . import enums, fields, limits, sources, vm_sizes
from .errors import Conflict, InvalidParameter, InvalidResourceName, NotFound
from .ids import (IMAGE_DEFINITION_TYPE, IMAGE_TEMPLATE_TYPE, IMAGE_VERSION_TYPE, MANAGED_IMAGE_TYPE,
                  USER_IDENTITY_TYPE, parent_id, parse_resource_id, resource_group_id)
from .ports import Context
from .regions import normalize_region
from .resource import SUCCEEDED, Resource, iso, utc_now

TYPE = IMAGE_TEMPLATE_TYPE
KIND = "image template"
# After creation Azure lets a template change only its tags, identity and build VM profile.
UPDATABLE = frozenset({"identity", "vmProfile"})
READ_ONLY = frozenset({"provisioningState", "provisioningError", "lastRunStatus",
                       "exactStagingResourceGroup", "source.exactVersion"})

DEFAULT_BUILD_TIMEOUT = 240
MAX_BUILD_TIMEOUT = 960
RUN_OUTPUT_TYPE = IMAGE_TEMPLATE_TYPE + "/runOutputs"

SOURCE_TYPES = ("PlatformImage", "ManagedImage", "SharedImageVersion")
CUSTOMIZER_TYPES = ("Shell", "File", "PowerShell", "WindowsRestart", "WindowsUpdate")
VALIDATOR_TYPES = ("Shell", "File", "PowerShell")
WINDOWS_ONLY = frozenset({"PowerShell", "WindowsRestart", "WindowsUpdate"})
DISTRIBUTOR_TYPES = ("ManagedImage", "SharedImage", "VHD")
SHARED_IMAGE_STORAGE_TYPES = ("Standard_LRS", "Standard_ZRS", "Premium_LRS")
REPLICATION_MODES = ("Full", "Shallow")
ON_BUILD_ERROR = ("cleanup", "abort")
IDENTITY_TYPES = ("UserAssigned", "None")

# Run states, as lastRunStatus spells them.
RUNNING, CANCELING = "Running", "Canceling"
QUEUED = "Queued"
ACTIVE_RUN_STATES = (RUNNING, CANCELING)

# Azure's imageTemplateName (and runOutputName) characters, 1-64 of them; like every ARM name it
# starts with a letter or digit and does not end in a period or hyphen (so not '.', '..', '-a', 'a.').
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_URI = re.compile(r"https?://[^/\s]+(/\S*)?", re.IGNORECASE)
_USER_IDENTITY = re.compile(r"/subscriptions/[0-9a-f-]{36}/resourcegroups/[-\w.()]{1,90}/providers/"
                            r"microsoft\.managedidentity/userassignedidentities/[A-Za-z0-9][A-Za-z0-9_-]{2,127}",
                            re.IGNORECASE | re.ASCII)
_GROUP_ID = re.compile(r"/subscriptions/([0-9a-f-]{36})/resourcegroups/([-\w.()]{1,90})", re.IGNORECASE | re.ASCII)
WINDOWS_MESSAGE = "Windows builds are not supported by Galley"


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidResourceName(f"Image template name '{name}' is invalid: use 1-64 letters, digits, "
                                  "hyphens, underscores and periods, starting with a letter or digit and "
                                  "ending with a letter, digit or underscore.", target="imageTemplateName")


# ---- the template ----------------------------------------------------------------------------------

def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    before = existing.properties if existing is not None else {}

    def frozen(key: str, check):
        """Sections fixed at creation are checked again only when the request changes them, so that
        a tags-only update does not fail because, say, the source image has since been deleted."""
        if key in before and props.get(key) == before[key]:
            return before[key]
        return check()

    source = frozen("source", lambda: _source(ctx, resource, props))
    result: dict = {"source": source}
    customize = frozen("customize", lambda: _steps(props, "customize", CUSTOMIZER_TYPES))
    if customize is not None:
        result["customize"] = customize
    validate = frozen("validate", lambda: _validate(props))
    if validate is not None:
        result["validate"] = validate
    result["distribute"] = frozen("distribute", lambda: _distribute(ctx, resource, props))
    result["buildTimeoutInMinutes"] = _build_timeout(props)
    vm_profile = _vm_profile(props)
    if vm_profile is not None:
        result["vmProfile"] = vm_profile
    result["identity"] = _identity(props)
    staging = _staging_group(resource, props)
    if staging is not None:
        result["stagingResourceGroup"] = staging
    result["exactStagingResourceGroup"] = staging or before.get("exactStagingResourceGroup") or \
        resource_group_id(resource.subscription_id,
                          f"IT_{resource.resource_group}_{resource.name}_{uuid.uuid4()}")
    result.update(_extras(props))
    if "lastRunStatus" in before:
        result["lastRunStatus"] = before["lastRunStatus"]
    # last: a well-formed template's identity must also exist and be the caller's to assign
    _check_identity_usable(ctx, result["identity"], (existing.properties.get("identity") if existing else None))
    return result


def _source(ctx: Context, resource: Resource, props: dict) -> dict:
    target = "properties.source"
    source = fields.obj(props, "source", target, required=True)
    kind = source.get("type")
    if isinstance(kind, str) and kind.lower() == "iso":
        raise InvalidParameter("ISO sources are deprecated: create a managed image or use a platform "
                               "image.", target=f"{target}.type")
    kind = enums.normalize(kind, SOURCE_TYPES, f"{target}.type", required=True)
    if kind == "PlatformImage":
        result = {"type": kind}
        for key in ("publisher", "offer", "sku", "version"):
            result[key] = _required_string(source, key, f"{target}.{key}", 256)
        plan = fields.obj(source, "planInfo", f"{target}.planInfo")
        if plan is not None:
            result["planInfo"] = {key: _required_string(plan, key, f"{target}.planInfo.{key}", 256)
                                  for key in ("planName", "planProduct", "planPublisher")}
        return result
    if kind == "ManagedImage":
        image = sources.resolve(ctx.tx, source.get("imageId"), f"{target}.imageId", (MANAGED_IMAGE_TYPE,))
        if image.location != resource.location:
            raise InvalidParameter(
                f"The source image '{image.id}' is in {image.location}; a template's managed image "
                f"source must be in the template's region ({resource.location}).",
                target=f"{target}.imageId")
        _check_linux(sources.os_type_of(ctx.tx, image), image.id, f"{target}.imageId")
        return {"type": kind, "imageId": image.id}
    # SharedImageVersion; API 2019-05-01-preview spelled the id imageVersionID.
    raw_id = source.get("imageVersionId", source.get("imageVersionID"))
    version = sources.resolve(ctx.tx, raw_id, f"{target}.imageVersionId", (IMAGE_VERSION_TYPE,))
    completed = {r.region for r in ctx.tx.target_regions(version.id) if r.state == "Completed"}
    if resource.location not in completed:
        raise InvalidParameter(
            f"The source version '{version.id}' is not replicated to {resource.location} (completed in: "
            f"{', '.join(sorted(completed)) or 'no region yet'}). Replicate it to the template's region "
            "first, or create the template in one of those regions.", target=f"{target}.imageVersionId")
    _check_linux(sources.os_type_of(ctx.tx, version), version.id, f"{target}.imageVersionId")
    return {"type": kind, "imageVersionId": version.id}


def _check_linux(os_type: str | None, source_id: str, target: str) -> None:
    if os_type is not None and os_type.lower() != "linux":
        raise InvalidParameter(f"The source '{source_id}' holds a {os_type} image. {WINDOWS_MESSAGE}: "
                               "use a Linux source.", target=target)


def _steps(props: dict, key: str, allowed: tuple[str, ...], prefix: str = "properties") -> list | None:
    """Customizers (or in-VM validators): a type each, unique names, Linux-only steps."""
    target = f"{prefix}.{key}"
    raw = fields.array(props, key, target, max_items=limits.MAX_TEMPLATE_STEPS)
    if raw is None:
        return None
    result, names = [], set()
    for i, step in enumerate(raw):
        where = f"{target}[{i}]"
        if not isinstance(step, dict):
            raise InvalidParameter(f"{where} must be an object with a type.", target=where)
        kind = enums.normalize(step.get("type"), allowed, f"{where}.type", required=True)
        name = fields.string(step, "name", f"{where}.name", max_length=256)
        if name is not None:
            if name.lower() in names:
                raise InvalidParameter(f"Name '{name}' is used by more than one step of {target}; "
                                       "names must be unique.", target=f"{where}.name")
            names.add(name.lower())
        if kind in WINDOWS_ONLY:
            raise InvalidParameter(f"{where} is a {kind} step, which runs on Windows. {WINDOWS_MESSAGE}: "
                                   "the source is Linux; use Shell steps instead.", target=f"{where}.type")
        entry = fields.drop_nones({"type": kind, "name": name})
        if kind == "Shell":
            entry.update(_script(step, where))
        else:  # File
            entry.update(_file(step, where))
        result.append(entry)
    return result


def _script(step: dict, where: str) -> dict:
    inline = fields.array(step, "inline", f"{where}.inline", max_items=limits.MAX_SCRIPT_LINES)
    script_uri = fields.string(step, "scriptUri", f"{where}.scriptUri")
    if (inline is None) == (script_uri is None):
        raise InvalidParameter(f"{where} needs exactly one of 'inline' (a list of commands) or "
                               "'scriptUri' (a script to download).", target=where)
    result: dict = {}
    if inline is not None:
        if not inline or not all(isinstance(line, str) for line in inline):
            raise InvalidParameter(f"'{where}.inline' must be a non-empty list of command strings.",
                                   target=f"{where}.inline")
        longest = max(range(len(inline)), key=lambda n: len(inline[n]))
        if len(inline[longest]) > limits.MAX_SCRIPT_LINE_LENGTH:
            raise InvalidParameter(f"'{where}.inline[{longest}]' is {len(inline[longest]):,} characters long; a "
                                   f"line may hold at most {limits.MAX_SCRIPT_LINE_LENGTH:,}. Put a longer "
                                   "script in a file and give its scriptUri.", target=f"{where}.inline[{longest}]")
        result["inline"] = list(inline)
    else:
        result["scriptUri"] = _uri(script_uri, f"{where}.scriptUri")
    result.update(_checksum(step, where))
    return result


def _file(step: dict, where: str) -> dict:
    source_uri = _uri(_required_string(step, "sourceUri", f"{where}.sourceUri", 4096), f"{where}.sourceUri")
    destination = _required_string(step, "destination", f"{where}.destination", 4096)
    cleaned = posixpath.normpath(destination)
    if not destination.startswith("/") or not cleaned.startswith("/tmp/"):
        raise InvalidParameter(f"'{where}.destination' is '{destination}'; on Linux a File customizer can "
                               "only write under /tmp (for example /tmp/app.tar.gz). Move the file "
                               "elsewhere with a Shell step.", target=f"{where}.destination")
    return {"sourceUri": source_uri, "destination": destination, **_checksum(step, where)}


def _checksum(step: dict, where: str) -> dict:
    value = fields.string(step, "sha256Checksum", f"{where}.sha256Checksum")
    if value is None:
        return {}
    if not _SHA256.fullmatch(value):
        raise InvalidParameter(f"'{where}.sha256Checksum' must be 64 hexadecimal characters (the output of "
                               f"sha256sum); got '{value[:80]}'.", target=f"{where}.sha256Checksum")
    return {"sha256Checksum": value}


def _uri(value: str | None, target: str) -> str:
    if value is None or not _URI.fullmatch(value):
        raise InvalidParameter(f"'{target}' must be an http(s) URI; got '{value}'.", target=target)
    return value


def _validate(props: dict) -> dict | None:
    target = "properties.validate"
    validate = fields.obj(props, "validate", target)
    if validate is None:
        return None
    result = fields.drop_nones({
        "continueDistributeOnFailure": fields.boolean(validate, "continueDistributeOnFailure",
                                                      f"{target}.continueDistributeOnFailure"),
        "sourceValidationOnly": fields.boolean(validate, "sourceValidationOnly",
                                               f"{target}.sourceValidationOnly"),
        "inVMValidations": _steps(validate, "inVMValidations", VALIDATOR_TYPES, target),
    })
    return result


def _build_timeout(props: dict) -> int:
    value = fields.integer(props, "buildTimeoutInMinutes", "properties.buildTimeoutInMinutes",
                           minimum=0, maximum=MAX_BUILD_TIMEOUT)
    return value or DEFAULT_BUILD_TIMEOUT


def _distribute(ctx: Context, resource: Resource, props: dict) -> list:
    target = "properties.distribute"
    raw = fields.array(props, "distribute", target, max_items=limits.MAX_TEMPLATE_STEPS)
    if not raw:
        raise InvalidParameter("Required parameter 'distribute' is missing or empty: give at least one "
                               "target (ManagedImage, SharedImage or VHD).", target=target)
    result, run_outputs = [], set()
    for i, item in enumerate(raw):
        where = f"{target}[{i}]"
        if not isinstance(item, dict):
            raise InvalidParameter(f"{where} must be an object with a type.", target=where)
        kind = enums.normalize(item.get("type"), DISTRIBUTOR_TYPES, f"{where}.type", required=True)
        name = _required_string(item, "runOutputName", f"{where}.runOutputName", 64)
        if not _NAME.fullmatch(name):
            raise InvalidParameter(f"runOutputName '{name}' is invalid: use 1-64 letters, digits, hyphens, "
                                   "underscores and periods, starting with a letter or digit and ending "
                                   "with a letter, digit or underscore.", target=f"{where}.runOutputName")
        if name.lower() in run_outputs:
            raise InvalidParameter(f"runOutputName '{name}' is used by more than one distribute target; "
                                   "each needs its own.", target=f"{where}.runOutputName")
        run_outputs.add(name.lower())
        entry: dict = {"type": kind, "runOutputName": name}
        tags = _string_map(item, "artifactTags", f"{where}.artifactTags")
        if tags is not None:
            entry["artifactTags"] = tags
        if kind == "ManagedImage":
            entry.update(_managed_image_target(ctx, item, where))
        elif kind == "SharedImage":
            entry.update(_shared_image_target(ctx, item, where))
        else:
            uri = fields.string(item, "uri", f"{where}.uri")
            if uri is not None:
                entry["uri"] = sources.check_blob_uri(uri, f"{where}.uri")
        result.append(entry)
    return result


def _managed_image_target(ctx: Context, item: dict, where: str) -> dict:
    image_id = parse_resource_id(item.get("imageId"), f"{where}.imageId")
    if image_id.type != MANAGED_IMAGE_TYPE:
        raise InvalidParameter(f"'{where}.imageId' must name a managed image "
                               "(.../providers/Microsoft.Compute/images/{name}).", target=f"{where}.imageId")
    if ctx.tx.get(resource_group_id(image_id.subscription, image_id.resource_group)) is None:
        raise InvalidParameter(f"The resource group '{image_id.resource_group}' of '{where}.imageId' does not "
                               "exist; create it before submitting the template.", target=f"{where}.imageId",
                               code="ResourceGroupNotFound")
    return {"imageId": image_id.id,
            "location": normalize_region(item.get("location"), ctx.settings.region_set, f"{where}.location")}


def _shared_image_target(ctx: Context, item: dict, where: str) -> dict:
    definition = sources.resolve(ctx.tx, item.get("galleryImageId"), f"{where}.galleryImageId",
                                 (IMAGE_DEFINITION_TYPE,))
    os_type = definition.properties.get("osType")
    if os_type is not None and os_type.lower() != "linux":
        raise InvalidParameter(f"Image definition '{definition.name}' is for {os_type}. {WINDOWS_MESSAGE}: "
                               "distribute to a Linux image definition.", target=f"{where}.galleryImageId")
    gallery = ctx.tx.get(parent_id(definition.id))
    gallery_region = gallery.location if gallery is not None else definition.location
    entry: dict = {"galleryImageId": definition.id}
    regions_raw = fields.array(item, "replicationRegions", f"{where}.replicationRegions",
                               max_items=limits.MAX_TARGET_REGIONS)
    targets_raw = fields.array(item, "targetRegions", f"{where}.targetRegions", max_items=limits.MAX_TARGET_REGIONS)
    if regions_raw is not None and targets_raw is not None:
        raise InvalidParameter(f"{where} gives both replicationRegions and targetRegions; give only "
                               "targetRegions (replicationRegions is its older form).", target=where)
    if regions_raw is not None:
        regions = _unique_regions(ctx, regions_raw, f"{where}.replicationRegions")
        named, entry["replicationRegions"] = regions, regions
        storage = enums.normalize(item.get("storageAccountType"), SHARED_IMAGE_STORAGE_TYPES,
                                  f"{where}.storageAccountType")
        if storage is not None:
            entry["storageAccountType"] = storage
    else:
        if item.get("storageAccountType") is not None:
            raise InvalidParameter(f"'{where}.storageAccountType' can only be given with replicationRegions; "
                                   "with targetRegions give each region's storageAccountType.",
                                   target=f"{where}.storageAccountType")
        targets = _target_regions(ctx, targets_raw, f"{where}.targetRegions") if targets_raw is not None \
            else [{"name": gallery_region, "replicaCount": 1, "storageAccountType": "Standard_LRS"}]
        named, entry["targetRegions"] = [t["name"] for t in targets], targets
    if gallery_region not in named:
        field = "replicationRegions" if regions_raw is not None else "targetRegions"
        raise InvalidParameter(f"The regions of {where} ({', '.join(named) or 'none'}) must include the "
                               f"gallery's region, {gallery_region}.", target=f"{where}.{field}")
    exclude = fields.boolean(item, "excludeFromLatest", f"{where}.excludeFromLatest")
    if exclude is not None:
        entry["excludeFromLatest"] = exclude
    mode = enums.normalize(item.get("replicationMode"), REPLICATION_MODES, f"{where}.replicationMode")
    if mode is not None:
        entry["replicationMode"] = mode
    versioning = _versioning(item, f"{where}.versioning")
    if versioning is not None:
        entry["versioning"] = versioning
    return entry


def _unique_regions(ctx: Context, raw: list, target: str) -> list[str]:
    regions: list[str] = []
    for i, value in enumerate(raw):
        region = normalize_region(value, ctx.settings.region_set, f"{target}[{i}]")
        if region in regions:
            raise InvalidParameter(f"Region '{region}' is listed twice in {target}.", target=f"{target}[{i}]")
        regions.append(region)
    return regions


def _target_regions(ctx: Context, raw: list, target: str) -> list[dict]:
    result: list[dict] = []
    limit = ctx.settings.limits.replicas_per_region
    for i, value in enumerate(raw):
        where = f"{target}[{i}]"
        if not isinstance(value, dict):
            raise InvalidParameter(f"{where} must be an object with a name.", target=where)
        region = normalize_region(value.get("name"), ctx.settings.region_set, f"{where}.name")
        if any(r["name"] == region for r in result):
            raise InvalidParameter(f"Region '{region}' is listed twice in {target}.", target=f"{where}.name")
        result.append({
            "name": region,
            "replicaCount": fields.integer(value, "replicaCount", f"{where}.replicaCount", minimum=1,
                                           maximum=limit) or 1,
            "storageAccountType": enums.normalize(value.get("storageAccountType"), SHARED_IMAGE_STORAGE_TYPES,
                                                  f"{where}.storageAccountType", default="Standard_LRS"),
        })
    return result


def _versioning(item: dict, target: str) -> dict | None:
    versioning = fields.obj(item, "versioning", target)
    if versioning is None:
        return None
    scheme = enums.normalize(versioning.get("scheme"), ("Latest", "Source"), f"{target}.scheme", required=True)
    if scheme == "Source":
        if versioning.get("major") is not None:
            raise InvalidParameter(f"'{target}.major' applies only to the Latest scheme.",
                                   target=f"{target}.major")
        return {"scheme": scheme}
    major = fields.integer(versioning, "major", f"{target}.major", minimum=-1, maximum=2_147_483_647)
    return fields.drop_nones({"scheme": scheme, "major": major})


def _vm_profile(props: dict) -> dict | None:
    target = "properties.vmProfile"
    profile = fields.obj(props, "vmProfile", target)
    if profile is None:
        return None
    result = fields.drop_nones({
        "vmSize": fields.string(profile, "vmSize", f"{target}.vmSize", max_length=128),
        "osDiskSizeGB": fields.integer(profile, "osDiskSizeGB", f"{target}.osDiskSizeGB", minimum=0,
                                       maximum=32_767),
    })
    if result.get("vmSize") is not None:
        try:
            vm_sizes.vm_size(result["vmSize"])
        except vm_sizes.UnknownVmSize as unknown:
            raise InvalidParameter(f"{unknown} The size sets the build's memory, CPU and process limits.",
                                   target=f"{target}.vmSize") from None
    identities = fields.array(profile, "userAssignedIdentities", f"{target}.userAssignedIdentities")
    if identities is not None:
        for i, value in enumerate(identities):
            _user_identity_id(value, f"{target}.userAssignedIdentities[{i}]")
        result["userAssignedIdentities"] = list(identities)
    vnet = fields.obj(profile, "vnetConfig", f"{target}.vnetConfig")
    if vnet is not None:
        result["vnetConfig"] = _string_map(profile, "vnetConfig", f"{target}.vnetConfig")
    return result


ASSIGN_ACTION = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"


def _check_identity_usable(ctx: Context, identity: dict, before: dict | None) -> None:
    """A template's identity must exist, and whoever sets it must be allowed to assign it (as Azure
    Image Builder requires), since the template's builds act as that identity."""
    for identity_id in identity.get("userAssignedIdentities", {}):
        if before and identity_id in before.get("userAssignedIdentities", {}):
            continue
        found = ctx.tx.get(identity_id)
        if found is None or found.type != USER_IDENTITY_TYPE:
            raise NotFound(f"The user-assigned identity '{identity_id}' does not exist.",
                           target="identity.userAssignedIdentities")
        sources.check_linked(found.id, ASSIGN_ACTION)


def _identity(props: dict) -> dict:
    """The template's identity (sent at the top level of the request, kept with the properties)."""
    identity = fields.obj(props, "identity", "identity")
    if identity is None:
        return {"type": "None"}
    kind = identity.get("type")
    if isinstance(kind, str) and "systemassigned" in kind.lower():
        raise InvalidParameter("Image templates support a user-assigned identity only: use type "
                               "'UserAssigned' with one identity, or 'None'.", target="identity.type")
    kind = enums.normalize(kind, IDENTITY_TYPES, "identity.type", default="None")
    assigned = fields.obj(identity, "userAssignedIdentities", "identity.userAssignedIdentities") or {}
    if kind == "None":  # an update to None drops whatever identities were assigned
        return {"type": kind}
    if len(assigned) != 1:
        raise InvalidParameter(
            f"An image template supports exactly one user-assigned identity; {len(assigned)} were given "
            "(to replace it in an update, set the old one to null).",
            target="identity.userAssignedIdentities")
    (identity_id, value), = assigned.items()
    _user_identity_id(identity_id, "identity.userAssignedIdentities")
    if not isinstance(value, dict):
        raise InvalidParameter("Each entry of identity.userAssignedIdentities must be an object ({}).",
                               target="identity.userAssignedIdentities")
    return {"type": kind, "userAssignedIdentities": {identity_id: {}}}


def _user_identity_id(value: object, target: str) -> str:
    if not isinstance(value, str) or not _USER_IDENTITY.fullmatch(value):
        raise InvalidParameter(
            f"'{value}' is not a user-assigned identity id such as /subscriptions/{{sub}}/resourceGroups/"
            "{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}.", target=target)
    return value


def _staging_group(resource: Resource, props: dict) -> str | None:
    target = "properties.stagingResourceGroup"
    value = fields.string(props, "stagingResourceGroup", target, max_length=1024)
    if not value:
        return None
    match = _GROUP_ID.fullmatch(value)
    if not match:
        raise InvalidParameter(f"'{value}' is not a resource group id such as "
                               "/subscriptions/{sub}/resourceGroups/{name}.", target=target)
    if match.group(1).lower() != resource.subscription_id.lower():
        raise InvalidParameter("The staging resource group must be in the template's subscription "
                               f"({resource.subscription_id}).", target=target)
    return value


def _extras(props: dict) -> dict:
    result: dict = {}
    handling = fields.obj(props, "errorHandling", "properties.errorHandling")
    if handling is not None:
        result["errorHandling"] = fields.drop_nones({
            key: enums.normalize(handling.get(key), ON_BUILD_ERROR, f"properties.errorHandling.{key}")
            for key in ("onCustomizerError", "onValidationError")})
    auto_run = fields.obj(props, "autoRun", "properties.autoRun")
    if auto_run is not None:
        state = enums.normalize(auto_run.get("state"), ("Enabled", "Disabled"), "properties.autoRun.state",
                                default="Disabled")
        if state == "Enabled":
            raise InvalidParameter("autoRun is not supported by Galley yet: start builds with POST "
                                   ".../imageTemplates/{name}/run.", target="properties.autoRun.state")
        result["autoRun"] = {"state": state}
    tags = _string_map(props, "managedResourceTags", "properties.managedResourceTags")
    if tags is not None:
        result["managedResourceTags"] = tags
    return result


def _required_string(container: dict, key: str, target: str, max_length: int) -> str:
    value = fields.string(container, key, target, required=True, max_length=max_length)
    if not value.strip():
        raise InvalidParameter(f"Required parameter '{key}' is empty.", target=target)
    return value


def _string_map(container: dict, key: str, target: str) -> dict | None:
    value = fields.obj(container, key, target)
    if value is None:
        return None
    for name, item in value.items():
        if not isinstance(item, str):
            raise InvalidParameter(f"'{target}.{name}' must be a string.", target=f"{target}.{name}")
    return dict(value)


# ---- runs ------------------------------------------------------------------------------------------

def run_in_progress(template: Resource) -> bool:
    status = template.properties.get("lastRunStatus") or {}
    return status.get("runState") in ACTIVE_RUN_STATES


def check_delete(template: Resource) -> None:
    """A template whose run is queued or running is deleted only after that run ends."""
    if run_in_progress(template):
        status = template.properties["lastRunStatus"]
        raise Conflict(
            f"Image template '{template.name}' has a run in progress ({status['runState']}, "
            f"{status.get('runSubState', '')}). Cancel it (POST .../imageTemplates/{template.name}/cancel) "
            "and delete the template once the run has ended.", code="OperationNotAllowed",
            target=template.id)


def start_run(template: Resource) -> None:
    """Record a new run as queued; the build pipeline takes it from there."""
    if template.provisioning_state != SUCCEEDED:
        raise Conflict(f"Image template '{template.name}' is {template.provisioning_state}; it can run once "
                       "its provisioning has succeeded.", code="OperationNotAllowed", target=template.id)
    if run_in_progress(template):
        status = template.properties["lastRunStatus"]
        raise Conflict(f"Image template '{template.name}' already has a run in progress "
                       f"({status['runState']}, {status.get('runSubState', '')}); wait for it to end or "
                       "cancel it before starting another.", code="OperationNotAllowed", target=template.id)
    template.properties["lastRunStatus"] = {"runState": RUNNING, "runSubState": QUEUED,
                                            "startTime": iso(utc_now())}


def request_cancel(template: Resource) -> None:
    status = template.properties.get("lastRunStatus") or {}
    if status.get("runState") == CANCELING:
        raise Conflict(f"The run of image template '{template.name}' is already being canceled.",
                       code="OperationNotAllowed", target=template.id)
    if status.get("runState") != RUNNING:
        raise Conflict(f"Image template '{template.name}' has no run in progress to cancel "
                       f"(last run: {status.get('runState') or 'none'}).", code="OperationNotAllowed",
                       target=template.id)
    template.properties["lastRunStatus"] = {**status, "runState": CANCELING, "message": "Cancel requested."}


@dataclass(frozen=True)
class RunOutput:
    """What one distribute target produced in the last run (its runOutputName)."""

    name: str
    provisioning_state: str
    artifact_id: str | None = None
    artifact_uri: str | None = None
