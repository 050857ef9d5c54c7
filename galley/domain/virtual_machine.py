"""Virtual machines (Microsoft.Compute/virtualMachines): what a VM is made from and the seed's rules.

A VM is created from a gallery image version (by id, or a definition's `latest` resolved in the
VM's region), a managed image, a platform image (publisher:offer:sku:version) or an existing OS
disk (`createOption: Attach`, specialized). Its disks are real managed disks: creating the VM
records them (`managedBy` the VM, `diskState: Attached`) in the same transaction, and the VM's
create job gives them their content (see jobs/vm_work.py) and boots the machine.

Rules checked here, before anything is recorded:
- the source version has finished replicating to the VM's region (409 naming that region's
  state); a version past its end of life still deploys, with a warning in the instance view;
- a generalized source needs an osProfile (it is provisioned on first boot); a specialized one
  refuses an osProfile (it boots exactly as captured);
- the definition's `recommended` vCPU and memory ranges, its `disallowed.diskTypes`, and
  `architecture` x64 (Galley runs x86-64 guests only);
- a per-subscription, per-region vCPU quota, and the host's memory: VMs that would overcommit it
  are refused rather than swapping.

Properties whose names start with `_` are Galley's own bookkeeping (power state, whether the
guest was generalized, the provisioning seed's inputs): stored with the VM, never rendered, never
accepted from a request.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
import warnings

from . import enums, fields, platform_images, sharing, sources, vm_sizes
from .errors import ArmError, Conflict, InvalidParameter, NotFound, OperationNotAllowed, QuotaExceeded
from .ids import (DISK_TYPE, IMAGE_DEFINITION_TYPE, IMAGE_VERSION_TYPE, MANAGED_IMAGE_TYPE,
                  VIRTUAL_MACHINE_TYPE, compute_id, parent_id, parse_resource_id)
from .names import check_compute_resource_name
from .network import NETWORK_INTERFACE_TYPE
from .ports import Context
from .resource import SUCCEEDED, Resource, iso, utc_now

TYPE = VIRTUAL_MACHINE_TYPE
KIND = "virtual machine"
UPDATABLE = frozenset({"hardwareProfile", "diagnosticsProfile"})
READ_ONLY = frozenset({"provisioningState", "vmId", "timeCreated", "instanceView"})

GIB = 1024 ** 3
OS_LUN = -1

# Power states, as the instance view's PowerState/<state> codes spell them.
STARTING, RUNNING, STOPPING, STOPPED = "starting", "running", "stopping", "stopped"
DEALLOCATING, DEALLOCATED = "deallocating", "deallocated"
POWER_DISPLAY = {STARTING: "VM starting", RUNNING: "VM running", STOPPING: "VM stopping",
                 STOPPED: "VM stopped", DEALLOCATING: "VM deallocating", DEALLOCATED: "VM deallocated"}
# Hidden bookkeeping keys.
POWER = "_powerState"
GENERALIZED = "_generalized"
PROVISIONING = "_provisioning"
GENERATION = "_hyperVGeneration"
WARNINGS = "_warnings"

# The power operations a VM accepts, and the states they may start from.
ACTIONS = {
    "start": {STOPPED, DEALLOCATED},
    "powerOff": {RUNNING, STARTING},
    "restart": {RUNNING},
    "deallocate": {RUNNING, STARTING, STOPPED, DEALLOCATED},
}
DISK_DELETE_OPTIONS = ("Delete", "Detach")
VM_CREATE_OPTIONS = ("FromImage", "Attach", "Empty")

_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?")
# The admin user's name: what useradd takes on Debian (32 characters at most), starting with a letter.
# Galley's provisioning agent applies these same rules in the guest (builder/provisioning.py).
ADMIN_USERNAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# Azure's disallowed adminUsername values (Linux and Windows alike) and the names Debian's base
# system gives its own accounts.
RESERVED_USERNAMES = frozenset({
    "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1", "1", "123",
    "a", "actuser", "adm", "admin2", "aspnet", "backup", "console", "david", "guest", "john", "owner",
    "root", "server", "sql", "support", "support_388945a0", "sys", "test2", "test3", "user4", "user5",
    "daemon", "bin", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data", "list",
    "irc", "gnats", "nobody", "systemd-network", "systemd-resolve", "messagebus", "sshd", "_apt",
    "systemd-timesync", "sudo", "staff", "users", "nogroup",
})
_SSH_KEY = re.compile(r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( [^\n]*)?")
MAX_CUSTOM_DATA_BYTES = 64 * 1024  # decoded, as Azure's limit


def check_name(name: str) -> None:
    check_compute_resource_name(name, "vmName")


# ---- create and update ---------------------------------------------------------------------------

def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    size = _vm_size(props)
    if existing is not None:
        return _update(existing, props, size)
    storage = fields.obj(props, "storageProfile", "properties.storageProfile", required=True)
    source = _source(ctx, resource, storage)
    os_profile = _os_profile(resource, props, source)
    _check_recommended(source, size)
    os_disk, data_disks = _disks(ctx, resource, storage, source)
    _check_disallowed(source, [os_disk, *data_disks])
    check_capacity(ctx, resource, size, exclude=None)
    result = fields.drop_nones({
        "hardwareProfile": {"vmSize": size.name},
        "storageProfile": fields.drop_nones({
            "imageReference": source.reference,
            "osDisk": os_disk,
            "dataDisks": data_disks,
        }),
        "osProfile": os_profile.public if os_profile else None,
        "networkProfile": _network_profile(ctx, resource, props),
        "diagnosticsProfile": _diagnostics_profile(props),
        "vmId": str(uuid.uuid4()),
        "timeCreated": iso(utc_now()),
        POWER: STARTING,
        GENERALIZED: False,
        GENERATION: source.generation,
        PROVISIONING: os_profile.seed if os_profile else None,
        WARNINGS: source.warnings or None,
    })
    return result


def _update(existing: Resource, props: dict, size: vm_sizes.VmSize) -> dict:
    result = dict(existing.properties)
    if size.name != existing.properties["hardwareProfile"]["vmSize"]:
        if existing.properties.get(POWER) not in (STOPPED, DEALLOCATED):
            raise OperationNotAllowed(
                "Resizing a running VM is not supported here: deallocate it first "
                "(az vm deallocate), then change hardwareProfile.vmSize.", target="properties.hardwareProfile.vmSize")
        result["hardwareProfile"] = {"vmSize": size.name}
    if props.get("diagnosticsProfile") is not None:
        result["diagnosticsProfile"] = _diagnostics_profile(props)
    for frozen in ("storageProfile", "osProfile"):
        if frozen in props and props[frozen] is not None:
            kept = {k: v for k, v in (existing.properties.get(frozen) or {}).items()}
            if _changes(kept, props[frozen]):
                raise ArmError(f"Changing property '{frozen}' of an existing virtual machine is not allowed.",
                               code="PropertyChangeNotAllowed", status=409, target=f"properties.{frozen}")
    return result


def _changes(kept: dict, asked: object) -> bool:
    """Whether `asked` (a request's copy, often the VM as GET returned it) differs from `kept`."""
    if not isinstance(asked, dict):
        return True
    for key, value in asked.items():
        if key in ("adminPassword", "customData", "requireGuestProvisionSignal", "secrets",
                   "allowExtensionOperations", "toBeDetached", "exactVersion"):
            continue
        if isinstance(value, dict) and isinstance(kept.get(key), dict):
            if _changes(kept[key], value):
                return True
        elif value is not None and kept.get(key) != value:
            return True
    return False


def _vm_size(props: dict) -> vm_sizes.VmSize:
    hardware = fields.obj(props, "hardwareProfile", "properties.hardwareProfile") or {}
    name = fields.string(hardware, "vmSize", "properties.hardwareProfile.vmSize")
    try:
        return vm_sizes.vm_size(name)
    except vm_sizes.UnknownVmSize as error:
        raise InvalidParameter(str(error).replace("Galley can build with", "Galley can run"),
                               target="properties.hardwareProfile.vmSize") from None


# ---- what the VM is made from ----------------------------------------------------------------------

class _Source:
    """The resolved image (or attached OS disk) and what the rules need to know about it."""

    def __init__(self, *, kind: str, reference: dict | None, os_type: str, os_state: str,
                 generation: str, size_gb: int | None, content_ref: dict, data_disks: dict[int, int | None],
                 definition: Resource | None = None, attach_disk: Resource | None = None,
                 warnings_: list[str] | None = None) -> None:
        self.kind = kind                  # "version" | "image" | "platform" | "attach"
        self.reference = reference        # storageProfile.imageReference as rendered
        self.os_type = os_type
        self.os_state = os_state
        self.generation = generation
        self.size_gb = size_gb
        self.content_ref = content_ref    # the OS disk's creationData (what its content is copied from)
        self.data_disks = data_disks      # LUN -> size GB of the image's data disks
        self.definition = definition
        self.attach_disk = attach_disk
        self.warnings = warnings_ or []


def _source(ctx: Context, resource: Resource, storage: dict) -> _Source:
    os_disk = fields.obj(storage, "osDisk", "properties.storageProfile.osDisk") or {}
    option = enums.normalize(os_disk.get("createOption"), VM_CREATE_OPTIONS,
                             "properties.storageProfile.osDisk.createOption", default="FromImage")
    reference = fields.obj(storage, "imageReference", "properties.storageProfile.imageReference")
    if option == "Attach":
        if reference:
            raise InvalidParameter("An attached OS disk (createOption Attach) boots as it is: give no "
                                   "storageProfile.imageReference.", target="properties.storageProfile.imageReference")
        return _attached_os_disk(ctx, resource, os_disk)
    if option == "Empty":
        raise InvalidParameter("An OS disk cannot be Empty: create it FromImage (storageProfile.imageReference) "
                               "or Attach an existing disk.", target="properties.storageProfile.osDisk.createOption")
    if not reference:
        raise InvalidParameter("Required parameter 'imageReference' is missing: name a gallery image version, a "
                               "managed image or a platform image (publisher, offer, sku, version).",
                               target="properties.storageProfile.imageReference")
    named = reference.get("id") or reference.get("sharedGalleryImageId") or reference.get("communityGalleryImageId")
    if named:
        return _image_by_id(ctx, resource, named)
    return _platform_image(ctx, reference)


def _image_by_id(ctx: Context, resource: Resource, named: object) -> _Source:
    target = "properties.storageProfile.imageReference.id"
    if not isinstance(named, str):
        raise InvalidParameter("imageReference.id must be a string.", target=target)
    asked = named
    shared = sharing.is_shared_id(named)
    parsed = None if shared else parse_resource_id(named, target)
    if parsed is not None and parsed.type == IMAGE_DEFINITION_TYPE:
        named = named.rstrip("/") + "/versions/latest"
    if not shared and named.rstrip("/").lower().endswith("/versions/latest"):
        definition_id = parent_id(named.rstrip("/"))
        sources.check_linked(definition_id, f"{IMAGE_DEFINITION_TYPE}/read")
        version = ctx.tx.latest_version(definition_id, iso(utc_now()), resource.location)
        if version is None:
            raise NotFound(f"Image definition '{definition_id}' has no version that can be used as latest in "
                           f"region '{resource.location}': none has finished replicating there, or all are "
                           "excluded from latest or past their end of life.", target=target, code="NotFound")
        named = version.id
    origin = sources.resolve(ctx.tx, named, target, (IMAGE_VERSION_TYPE, MANAGED_IMAGE_TYPE))
    if origin.type == MANAGED_IMAGE_TYPE:
        if origin.location != resource.location:
            raise InvalidParameter(f"Managed image '{origin.id}' is in {origin.location}; a VM must be in the same "
                                   f"region as its managed image ({resource.location}).", target=target)
        os_disk = origin.properties["storageProfile"]["osDisk"]
        return _Source(kind="image", reference={"id": origin.id}, os_type=os_disk["osType"],
                       os_state=os_disk.get("osState", "Generalized"),
                       generation=origin.properties.get("hyperVGeneration", "V1"),
                       size_gb=sources.size_gb_of(origin), content_ref={"imageReference": {"id": origin.id}},
                       data_disks=sources.data_disk_sizes_gb(origin))
    return _version_source(ctx, resource, origin, asked, target)


def _version_source(ctx: Context, resource: Resource, version: Resource, named: str, target: str) -> _Source:
    definition = ctx.tx.get(parent_id(version.id))
    if definition is None:
        raise NotFound(f"The image definition of '{version.id}' no longer exists.", target=target)
    regions = {r.region: r for r in ctx.tx.target_regions(version.id)}
    here = regions.get(resource.location)
    if here is None:
        raise Conflict(f"Image version '{version.id}' is not replicated to region '{resource.location}' (its "
                       f"regions: {', '.join(sorted(regions))}); add the region to its targetRegions or create "
                       "the VM in one of those.", target=target, code="ImageVersionNotInRegion")
    if here.state != "Completed":
        raise Conflict(f"Image version '{version.id}' is {here.state} in region '{resource.location}' "
                       f"({here.progress}% replicated); a VM can be deployed from it there once its replication "
                       "has completed.", target=target, code="ImageVersionNotReady")
    props = definition.properties
    if props.get("architecture", "x64") != "x64":
        raise InvalidParameter(f"Image definition '{definition.name}' is {props['architecture']}: Galley runs x64 "
                               "virtual machines only.", target=target)
    warnings_ = []
    end = version.properties.get("publishingProfile", {}).get("endOfLifeDate")
    if end and end < iso(utc_now()):
        warnings_.append(f"Image version '{version.name}' reached its end of life on {end}; the VM was "
                         "deployed from it anyway, but it should move to a newer version.")
    reference = {"id": named if named.lower() != version.id.lower() else version.id}
    if reference["id"] != version.id:
        reference["exactVersion"] = version.name
    return _Source(kind="version", reference=reference, os_type=props.get("osType", "Linux"),
                   os_state=props.get("osState", "Generalized"), generation=props.get("hyperVGeneration", "V1"),
                   size_gb=sources.size_gb_of(version), content_ref={"galleryImageReference": {"id": version.id}},
                   data_disks=sources.data_disk_sizes_gb(version), definition=definition, warnings_=warnings_)


def _platform_image(ctx: Context, reference: dict) -> _Source:
    target = "properties.storageProfile.imageReference"
    parts = {}
    for name in ("publisher", "offer", "sku", "version"):
        value = fields.string(reference, name, f"{target}.{name}")
        if not value:
            raise InvalidParameter(f"imageReference needs an id or all of publisher, offer, sku and version; "
                                   f"'{name}' is missing.", target=f"{target}.{name}")
        parts[name] = value
    image = platform_images.resolve(ctx.tx, parts["publisher"], parts["offer"], parts["sku"], parts["version"])
    if image is None:
        urn = ":".join(parts.values())
        raise NotFound(f"The platform image {urn} is not in Galley's catalog; import it (galley platform import "
                       "debian-12) or pick one from `galley platform list`.", target=target, code="PlatformImageNotFound")
    if image.architecture != "x64":
        raise InvalidParameter(f"Platform image {image.urn} is {image.architecture}: Galley runs x64 virtual "
                               "machines only.", target=target)
    rendered = {"publisher": image.publisher, "offer": image.offer, "sku": image.sku,
                "version": parts["version"], "exactVersion": image.version}
    return _Source(kind="platform", reference=rendered, os_type=image.os_type, os_state="Generalized",
                   generation=image.hyper_v_generation, size_gb=-(-image.virtual_size // GIB) or None,
                   content_ref={"platformImage": image.content_key}, data_disks={})


def _attached_os_disk(ctx: Context, resource: Resource, os_disk: dict) -> _Source:
    target = "properties.storageProfile.osDisk.managedDisk.id"
    managed = fields.obj(os_disk, "managedDisk", "properties.storageProfile.osDisk.managedDisk") or {}
    disk = _attachable_disk(ctx, resource, managed.get("id"), target)
    os_type = disk.properties.get("osType")
    if os_type is None:
        os_type = enums.normalize(os_disk.get("osType"), enums.OS_TYPES, "properties.storageProfile.osDisk.osType")
    if os_type is None:
        raise InvalidParameter(f"Disk '{disk.name}' has no osType: set it on the disk or give "
                               "storageProfile.osDisk.osType.", target="properties.storageProfile.osDisk.osType")
    return _Source(kind="attach", reference=None, os_type=os_type, os_state="Specialized",
                   generation=disk.properties.get("hyperVGeneration") or "V1",
                   size_gb=disk.properties.get("diskSizeGB"), content_ref={}, data_disks={}, attach_disk=disk)


def _attachable_disk(ctx: Context, resource: Resource, disk_id: object, target: str) -> Resource:
    if not disk_id:
        raise InvalidParameter("An attached disk needs managedDisk.id.", target=target)
    disk = sources.resolve(ctx.tx, disk_id, target, (DISK_TYPE,))
    if disk.location != resource.location:
        raise InvalidParameter(f"Disk '{disk.id}' is in {disk.location}; a VM can attach disks of its own region "
                               f"({resource.location}) only.", target=target)
    owner = disk.properties.get("managedBy")
    if owner:
        raise Conflict(f"Disk '{disk.name}' is already attached to '{owner}'.", target=target,
                       code="OperationNotAllowed")
    if disk.properties.get("diskState") not in ("Unattached", None):
        raise Conflict(f"Disk '{disk.name}' is {disk.properties['diskState']}; it can be attached once it is "
                       "Unattached.", target=target, code="OperationNotAllowed")
    return disk


# ---- osProfile and provisioning -------------------------------------------------------------------

class _OsProfile:
    def __init__(self, public: dict, seed: dict) -> None:
        self.public = public   # as rendered (no password, no customData)
        self.seed = seed       # what the provisioning seed is made of


def _os_profile(resource: Resource, props: dict, source: _Source) -> _OsProfile | None:
    target = "properties.osProfile"
    profile = fields.obj(props, "osProfile", target)
    if source.os_state == "Specialized":
        if profile:
            raise InvalidParameter(
                "Parameter 'osProfile' is not allowed: the VM is made from a specialized "
                f"{'disk' if source.kind == 'attach' else 'image'}, which boots exactly as it was captured "
                "(its users, host name and keys included).", target=target)
        return None
    if not profile:
        raise InvalidParameter("Required parameter 'osProfile' is missing: a VM from a generalized image is "
                               "provisioned on first boot with osProfile.adminUsername and an SSH key or password.",
                               target=target)
    if source.os_type != "Linux" or profile.get("windowsConfiguration"):
        raise InvalidParameter("Galley provisions Linux guests only; a Windows image can be deployed only as "
                               "specialized (without osProfile).", target=f"{target}.windowsConfiguration")
    computer = fields.string(profile, "computerName", f"{target}.computerName") or resource.name
    if not _HOSTNAME.fullmatch(computer) or computer.isdigit():
        raise InvalidParameter(f"computerName '{computer}' is not a valid Linux host name: 1-64 letters, digits "
                               "and hyphens, not starting or ending with a hyphen, not only digits (set "
                               "osProfile.computerName when the VM's name is not one).", target=f"{target}.computerName")
    user = fields.string(profile, "adminUsername", f"{target}.adminUsername", required=True)
    if not ADMIN_USERNAME_PATTERN.fullmatch(user):
        raise InvalidParameter(f"adminUsername '{user}' is invalid: 1-32 lowercase letters, digits, hyphens and "
                               "underscores, starting with a letter.", target=f"{target}.adminUsername")
    if user in RESERVED_USERNAMES:
        raise InvalidParameter(f"adminUsername '{user}' is reserved; choose another name.",
                               target=f"{target}.adminUsername")
    linux = fields.obj(profile, "linuxConfiguration", f"{target}.linuxConfiguration") or {}
    keys = _ssh_keys(linux, user, f"{target}.linuxConfiguration.ssh.publicKeys")
    password = fields.string(profile, "adminPassword", f"{target}.adminPassword", max_length=123)
    disable_password = fields.boolean(linux, "disablePasswordAuthentication",
                                      f"{target}.linuxConfiguration.disablePasswordAuthentication")
    if disable_password is None:
        disable_password = password is None
    if password is None and not keys:
        raise InvalidParameter("Give osProfile.linuxConfiguration.ssh.publicKeys or osProfile.adminPassword: "
                               "the admin user needs a way to sign in.", target=f"{target}.adminPassword")
    if password is not None and disable_password:
        raise InvalidParameter("adminPassword is given but linuxConfiguration.disablePasswordAuthentication is "
                               "true.", target=f"{target}.adminPassword")
    if password is not None:
        _check_password(password, user, f"{target}.adminPassword")
    custom = _custom_data(profile, f"{target}.customData")
    public = {
        "computerName": computer, "adminUsername": user,
        "linuxConfiguration": {"disablePasswordAuthentication": disable_password,
                               "ssh": {"publicKeys": keys}, "provisionVMAgent": True},
        "secrets": [], "allowExtensionOperations": True, "requireGuestProvisionSignal": True,
    }
    seed = fields.drop_nones({"passwordHash": hash_password(password) if password is not None else None,
                              "customData": custom})
    return _OsProfile(public, seed)


def _ssh_keys(linux: dict, user: str, target: str) -> list[dict]:
    ssh = fields.obj(linux, "ssh", target.rsplit(".", 1)[0]) or {}
    found = []
    for i, item in enumerate(fields.array(ssh, "publicKeys", target) or []):
        if not isinstance(item, dict):
            raise InvalidParameter(f"{target}[{i}] must be an object with path and keyData.", target=f"{target}[{i}]")
        data = (fields.string(item, "keyData", f"{target}[{i}].keyData", required=True, max_length=16_384)
                or "").strip()
        if not _SSH_KEY.fullmatch(data):
            raise InvalidParameter(f"{target}[{i}].keyData is not an OpenSSH public key (such as 'ssh-ed25519 "
                                   "AAAA... comment').", target=f"{target}[{i}].keyData", code="InvalidParameter")
        path = fields.string(item, "path", f"{target}[{i}].path") or f"/home/{user}/.ssh/authorized_keys"
        if path != f"/home/{user}/.ssh/authorized_keys":
            raise InvalidParameter(f"{target}[{i}].path must be /home/{user}/.ssh/authorized_keys (the admin "
                                   "user's authorized keys).", target=f"{target}[{i}].path")
        found.append({"path": path, "keyData": data})
    return found


def _check_password(password: str, user: str, target: str) -> None:
    classes = sum(bool(re.search(pattern, password)) for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    control = any(ord(ch) < 32 or ord(ch) == 127 for ch in password)
    if not 6 <= len(password) <= 72 or classes < 3 or user.lower() in password.lower() or control:
        raise InvalidParameter("The supplied password must be between 6-72 characters long and must satisfy at "
                               "least 3 of password complexity requirements from the following: 1) Contains an "
                               "uppercase character 2) Contains a lowercase character 3) Contains a numeric digit "
                               "4) Contains a special character 5) Control characters are not allowed; it must not "
                               "contain the user name.", target=target)


def hash_password(password: str) -> str:
    """A SHA-512 crypt hash for /etc/shadow: the plain password is never stored. (A line break or
    NUL could not be typed at a login prompt; _check_password refuses them in requests.)"""
    if any(ch in password for ch in "\r\n\0"):
        raise ValueError("a password cannot contain line breaks or NUL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # deprecated since 3.11 but still the standard library's only SHA-512 crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def _custom_data(profile: dict, target: str) -> str | None:
    value = fields.string(profile, "customData", target, max_length=4 * MAX_CUSTOM_DATA_BYTES // 3 + 4)
    if value is None:
        return None
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("customData must be base64-encoded.", target=target) from None
    if len(decoded) > MAX_CUSTOM_DATA_BYTES:
        raise InvalidParameter(f"customData holds {len(decoded):,} bytes once decoded; at most "
                               f"{MAX_CUSTOM_DATA_BYTES:,} are allowed.", target=target)
    return value


# ---- disks ---------------------------------------------------------------------------------------

def disk_name(vm_name: str, role: str) -> str:
    return f"{vm_name}_{role}_{uuid.uuid4().hex}"[:80]


def _disks(ctx: Context, resource: Resource, storage: dict, source: _Source) -> tuple[dict, list[dict]]:
    target = "properties.storageProfile.osDisk"
    raw = fields.obj(storage, "osDisk", target) or {}
    managed = fields.obj(raw, "managedDisk", f"{target}.managedDisk") or {}
    account = enums.normalize(managed.get("storageAccountType"), enums.DISK_SKUS,
                              f"{target}.managedDisk.storageAccountType", default="Standard_LRS")
    size = fields.integer(raw, "diskSizeGB", f"{target}.diskSizeGB", minimum=1, maximum=4_095)
    if source.attach_disk is not None:
        disk_id, name, size = source.attach_disk.id, source.attach_disk.name, source.attach_disk.properties["diskSizeGB"]
        account = (source.attach_disk.sku or {}).get("name", account)
        option = "Attach"
    else:
        name = fields.string(raw, "name", f"{target}.name") or disk_name(resource.name, "OsDisk_1")
        check_compute_resource_name(name, f"{target}.name")
        disk_id = compute_id(resource.subscription_id, resource.resource_group, "disks", name)
        if size is not None and source.size_gb and size < source.size_gb:
            raise InvalidParameter(f"The OS disk cannot be smaller than its image ({source.size_gb} GB); asked "
                                   f"for {size} GB.", target=f"{target}.diskSizeGB")
        size = size or source.size_gb
        option = "FromImage"
    os_disk = fields.drop_nones({
        "osType": source.os_type, "name": name, "createOption": option,
        "caching": enums.normalize(raw.get("caching"), enums.HOST_CACHING, f"{target}.caching", default="ReadWrite"),
        "managedDisk": {"id": disk_id, "storageAccountType": account},
        "deleteOption": enums.normalize(raw.get("deleteOption"), DISK_DELETE_OPTIONS, f"{target}.deleteOption",
                                        default="Detach"),
        "diskSizeGB": size,
    })
    data_disks = _data_disks(ctx, resource, storage, source)
    return os_disk, data_disks


def _data_disks(ctx: Context, resource: Resource, storage: dict, source: _Source) -> list[dict]:
    asked = {}
    for lun, raw, target in fields.disks_by_lun(storage, "dataDisks", "properties.storageProfile.dataDisks"):
        if lun in asked:
            raise InvalidParameter(f"LUN {lun} is used by more than one data disk.", target=f"{target}.lun")
        asked[lun] = (raw, target)
    for lun in source.data_disks:  # an image's data disks come along unless the request names their LUN
        asked.setdefault(lun, ({"lun": lun, "createOption": "FromImage"}, f"properties.storageProfile.dataDisks[lun {lun}]"))
    result = []
    attached: set[str] = set()
    for lun in sorted(asked):
        raw, target = asked[lun]
        option = enums.normalize(raw.get("createOption"), VM_CREATE_OPTIONS, f"{target}.createOption", required=True)
        managed = fields.obj(raw, "managedDisk", f"{target}.managedDisk") or {}
        account = enums.normalize(managed.get("storageAccountType"), enums.DISK_SKUS,
                                  f"{target}.managedDisk.storageAccountType", default="Standard_LRS")
        size = fields.integer(raw, "diskSizeGB", f"{target}.diskSizeGB", minimum=1, maximum=32_767)
        if option == "Attach":
            disk = _attachable_disk(ctx, resource, managed.get("id"), f"{target}.managedDisk.id")
            if disk.key in attached:
                raise InvalidParameter(f"Disk '{disk.name}' is attached twice.", target=f"{target}.managedDisk.id")
            attached.add(disk.key)
            disk_id, name, size = disk.id, disk.name, disk.properties["diskSizeGB"]
            account = (disk.sku or {}).get("name", account)
        else:
            if option == "FromImage" and lun not in source.data_disks:
                raise InvalidParameter(f"Data disk LUN {lun} is FromImage, but the image has no data disk at that "
                                       f"LUN ({', '.join(map(str, sorted(source.data_disks))) or 'it has none'}).",
                                       target=f"{target}.lun")
            if option == "Empty" and size is None:
                raise InvalidParameter(f"An Empty data disk needs diskSizeGB ({target}).", target=f"{target}.diskSizeGB")
            image_size = source.data_disks.get(lun) if option == "FromImage" else None
            size = max(size or 0, image_size or 0) or size
            name = fields.string(raw, "name", f"{target}.name") or disk_name(resource.name, f"disk{lun}")
            check_compute_resource_name(name, f"{target}.name")
            disk_id = compute_id(resource.subscription_id, resource.resource_group, "disks", name)
            if managed.get("id"):
                raise InvalidParameter(f"managedDisk.id is for createOption Attach; {option} makes a new disk.",
                                       target=f"{target}.managedDisk.id")
        result.append(fields.drop_nones({
            "lun": lun, "name": name, "createOption": option,
            "caching": enums.normalize(raw.get("caching"), enums.HOST_CACHING, f"{target}.caching", default="None"),
            "diskSizeGB": size,
            "managedDisk": {"id": disk_id, "storageAccountType": account},
            "deleteOption": enums.normalize(raw.get("deleteOption"), DISK_DELETE_OPTIONS, f"{target}.deleteOption",
                                            default="Detach"),
            "toBeDetached": False,
        }))
    return result


def new_disks(resource: Resource, source_refs: dict[int, dict]) -> list[Resource]:
    """The managed disks a new VM makes (FromImage and Empty), recorded with the VM, in state Creating."""
    props = resource.properties
    storage = props["storageProfile"]
    made = []
    entries = [(OS_LUN, storage["osDisk"])] + [(d["lun"], d) for d in storage.get("dataDisks", [])]
    for lun, entry in entries:
        if entry["createOption"] == "Attach":
            continue
        parsed = parse_resource_id(entry["managedDisk"]["id"], "managedDisk.id")
        creation = {"createOption": "Empty"} if entry["createOption"] == "Empty" else \
            {"createOption": "FromImage", **source_refs.get(lun, {})}
        size_gb = entry["diskSizeGB"]
        disk = Resource(id=parsed.id, type=DISK_TYPE, name=entry["name"], subscription_id=resource.subscription_id,
                        resource_group=resource.resource_group, location=resource.location,
                        sku={"name": entry["managedDisk"]["storageAccountType"]})
        disk.properties = fields.drop_nones({
            "creationData": creation, "diskSizeGB": size_gb, "diskSizeBytes": size_gb * GIB if size_gb else None,
            "osType": storage["osDisk"]["osType"] if lun == OS_LUN else None,
            "hyperVGeneration": props.get(GENERATION) if lun == OS_LUN else None,
            "uniqueId": str(uuid.uuid4()), "timeCreated": iso(utc_now()),
            "diskState": "Attached", "managedBy": resource.id,
        })
        made.append(disk)
    return made


def attached_disk_ids(resource: Resource) -> list[tuple[int, str]]:
    """(LUN, disk id) of every disk of the VM, the OS disk (LUN -1) first."""
    storage = resource.properties["storageProfile"]
    return [(OS_LUN, storage["osDisk"]["managedDisk"]["id"])] + \
        [(d["lun"], d["managedDisk"]["id"]) for d in storage.get("dataDisks", [])]


def on_created(ctx: Context, resource: Resource) -> None:
    """Record the VM's new disks and mark the attached ones (called in the VM's create transaction)."""
    source_refs = {OS_LUN: _content_ref_of(resource)}
    image_ref = source_refs[OS_LUN]
    for entry in resource.properties["storageProfile"].get("dataDisks", []):
        if entry["createOption"] == "FromImage":
            source_refs[entry["lun"]] = {**image_ref, "lun": entry["lun"]}
    for disk in new_disks(resource, source_refs):
        if ctx.tx.get(disk.id) is not None:
            raise Conflict(f"Disk '{disk.name}' already exists; name the VM's disks differently.",
                           target=disk.id, code="ResourceExists")
        ctx.tx.insert(disk)
    for _lun, disk_id in attached_disk_ids(resource):
        disk = ctx.tx.get(disk_id)
        if disk is not None and disk.properties.get("managedBy") is None:
            disk.properties["managedBy"] = resource.id
            disk.properties["diskState"] = "Attached"
            ctx.tx.save(disk)


def _content_ref_of(resource: Resource) -> dict:
    reference = resource.properties["storageProfile"].get("imageReference") or {}
    if reference.get("publisher"):
        return {"imageReference": {"id": platform_image_id(resource, reference)}}
    if reference.get("id"):
        exact = reference["id"]
        if reference.get("exactVersion") and exact.lower().endswith("/latest"):
            exact = exact.rsplit("/", 1)[0] + "/" + reference["exactVersion"]
        elif reference.get("exactVersion") and "/versions/" not in exact.lower():
            exact = exact.rstrip("/") + "/versions/" + reference["exactVersion"]
        key = "galleryImageReference" if "/galleries/" in exact.lower() else "imageReference"
        return {key: {"id": exact}}
    return {}


def platform_image_id(resource: Resource, reference: dict) -> str:
    return platform_images.arm_id(resource.subscription_id, resource.location, reference["publisher"],
                                  reference["offer"], reference["sku"], reference["exactVersion"])


# ---- network and diagnostics --------------------------------------------------------------------------

def _network_profile(ctx: Context, resource: Resource, props: dict) -> dict:
    """The NICs the VM names (they must exist, in its region), kept as references. Every Galley VM
    has one virtual NIC on QEMU's user-mode network (guest 10.0.2.15, SSH forwarded from
    127.0.0.1, see the instance view)."""
    target = "properties.networkProfile"
    profile = fields.obj(props, "networkProfile", target) or {}
    nics = []
    for i, item in enumerate(fields.array(profile, "networkInterfaces", f"{target}.networkInterfaces") or []):
        where = f"{target}.networkInterfaces[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"].startswith("/"):
            raise InvalidParameter(f"{where} needs the id of a network interface.", target=f"{where}.id")
        nic = ctx.tx.get(item["id"])
        if nic is None or nic.type.lower() != NETWORK_INTERFACE_TYPE.lower():
            raise NotFound(f"Network interface '{item['id']}' was not found.", target=f"{where}.id", code="NotFound")
        if nic.location != resource.location:
            raise InvalidParameter(f"Network interface '{nic.name}' is in {nic.location}; a VM in {resource.location} "
                                   "needs one of its own region.", target=f"{where}.id")
        options = fields.obj(item, "properties", f"{where}.properties") or {}
        nics.append(fields.drop_nones({"id": item["id"], "properties": fields.drop_nones({
            "primary": fields.boolean(options, "primary", f"{where}.properties.primary"),
            "deleteOption": enums.normalize(options.get("deleteOption"), DISK_DELETE_OPTIONS,
                                            f"{where}.properties.deleteOption"),
        }) or None}))
    return {"networkInterfaces": nics}


def _diagnostics_profile(props: dict) -> dict:
    target = "properties.diagnosticsProfile"
    profile = fields.obj(props, "diagnosticsProfile", target) or {}
    boot = fields.obj(profile, "bootDiagnostics", f"{target}.bootDiagnostics") or {}
    enabled = fields.boolean(boot, "enabled", f"{target}.bootDiagnostics.enabled")
    # The serial console is always captured (managed boot diagnostics); storageUri is not used.
    return {"bootDiagnostics": {"enabled": True if enabled is None else enabled}}


# ---- rules that span the definition and the host -----------------------------------------------------

def _check_recommended(source: _Source, size: vm_sizes.VmSize) -> None:
    recommended = (source.definition.properties.get("recommended") if source.definition else None) or {}
    target = "properties.hardwareProfile.vmSize"
    for field_name, value, unit in (("vCPUs", size.vcpus, "vCPUs"), ("memory", size.memory_mib / 1024, "GB of memory")):
        bounds = recommended.get(field_name) or {}
        low, high = bounds.get("min"), bounds.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidParameter(
                f"VM size {size.describe()} is outside image definition '{source.definition.name}''s recommended "
                f"{unit} ({low if low is not None else 'any'} to {high if high is not None else 'any'}); pick a size "
                "within that range.", target=target, code="VMSizeNotRecommended")


def _check_disallowed(source: _Source, disks: list[dict]) -> None:
    disallowed = (source.definition.properties.get("disallowed") if source.definition else None) or {}
    banned = {t.lower() for t in disallowed.get("diskTypes") or []}
    for disk in disks:
        account = disk["managedDisk"]["storageAccountType"]
        if account.lower() in banned:
            raise InvalidParameter(f"Image definition '{source.definition.name}' disallows disk type {account} "
                                   f"(disallowed.diskTypes: {', '.join(disallowed['diskTypes'])}).",
                                   target="properties.storageProfile", code="DiskTypeNotAllowed")


def check_capacity(ctx: Context, resource: Resource, size: vm_sizes.VmSize, exclude: str | None) -> None:
    """The region's vCPU quota (every VM counts, deallocated ones excepted, as in Azure) and the
    host's memory for VMs (the running and starting ones)."""
    others = [vm for vm in ctx.tx.all_of_type(TYPE) if vm.key != (exclude or resource.key)]
    ctx.tx.lock(f"quota/{resource.subscription_id}/{TYPE}/{resource.location}".lower())
    used = sum(vm_size_of(vm).vcpus for vm in others
               if vm.subscription_id == resource.subscription_id and vm.location == resource.location
               and vm.properties.get(POWER) != DEALLOCATED)
    limit = ctx.settings.limits.regional_vcpus
    if used + size.vcpus > limit:
        raise QuotaExceeded(f"Operation could not be completed as it results in exceeding approved Total Regional "
                            f"Cores quota. Location: {resource.location}, current usage: {used}, additional required: "
                            f"{size.vcpus}, limit: {limit}.", target="properties.hardwareProfile.vmSize",
                            code="OperationNotAllowed")
    memory = sum(vm_size_of(vm).memory_mib for vm in others if vm.properties.get(POWER) in (STARTING, RUNNING))
    host = ctx.settings.vm_memory_mib
    if memory + size.memory_mib > host:
        raise ArmError(f"This host has {host:,} MiB of memory for virtual machines and {memory:,} MiB are in use; "
                       f"{size.describe()} does not fit. Stop or deallocate another VM, or pick a smaller size.",
                       code="AllocationFailed", status=409, target="properties.hardwareProfile.vmSize")


def vm_size_of(vm: Resource) -> vm_sizes.VmSize:
    return vm_sizes.vm_size(vm.properties["hardwareProfile"]["vmSize"])


# ---- power operations ------------------------------------------------------------------------------

def check_action(vm: Resource, action: str) -> None:
    state = vm.properties.get(POWER)
    allowed = ACTIONS[action]
    if vm.provisioning_state not in (SUCCEEDED, "Failed"):
        raise OperationNotAllowed(f"VM '{vm.name}' is {vm.provisioning_state}; {action} it once that operation "
                                  "ends.", target=vm.id)
    if state not in allowed:
        raise OperationNotAllowed(f"Operation '{action}' is not allowed on VM '{vm.name}' since the VM is "
                                  f"{state}.", target=vm.id, code="OperationNotAllowed")
    if action == "start" and vm.properties.get(GENERALIZED):
        raise OperationNotAllowed(f"Operation 'start' is not allowed on VM '{vm.name}' since the VM is generalized: "
                                  "capture it (az image create, az sig image-version create) and deploy new VMs "
                                  "from the image.", target=vm.id, code="OperationNotAllowed")


def transitional_state(action: str) -> str:
    return {"start": STARTING, "powerOff": STOPPING, "restart": RUNNING, "deallocate": DEALLOCATING}[action]


def check_generalize(vm: Resource) -> None:
    if vm.properties.get(POWER) not in (STOPPED, DEALLOCATED):
        raise OperationNotAllowed(f"VM '{vm.name}' is {vm.properties.get(POWER)}: deprovision the guest "
                                  "(run-command `galley-deprovision +user`), deallocate it, then generalize.",
                                  target=vm.id)


def check_capturable(vm: Resource, *, generalized: bool | None, target: str) -> None:
    """A VM whose disks may be captured into an image: stopped or deallocated (its disks hold what it
    wrote), and generalized when the image is to be generalized."""
    state = vm.properties.get(POWER)
    if state not in (STOPPED, DEALLOCATED):
        raise Conflict(f"VM '{vm.name}' is {state}; stop or deallocate it (az vm deallocate) before capturing "
                       "its disks.", target=target, code="OperationNotAllowed")
    if generalized and not vm.properties.get(GENERALIZED):
        raise Conflict(f"VM '{vm.name}' is not generalized: deprovision the guest, deallocate it and run "
                       "`az vm generalize` before capturing it as a generalized image.", target=target,
                       code="OperationNotAllowed")


def check_delete(resource: Resource) -> None:
    """VMs can be deleted in any power state: the delete stops the machine first."""


def is_generalized(vm: Resource) -> bool:
    return bool(vm.properties.get(GENERALIZED))
