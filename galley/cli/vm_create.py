"""The request body of `galley vm create`: what `--image` names, the admin user and its SSH keys,
the disks. Plain functions over a Session (they look up what a name or an image is), so that the
command in vm_commands.py stays a list of options."""

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from galley.cli import paths
from galley.cli.client import API_DISK, API_GALLERY, API_IMAGE, ArmError
from galley.cli.common import Session, usage_error

IMAGE_FORMS = ("a gallery image version id, an image definition id (its latest version), …/versions/latest, "
               "a managed image id or name in -g, or a platform image URN Publisher:Offer:Sku:Version|latest")
IMAGE_KINDS = (["images"], ["galleries", "images"], ["galleries", "images", "versions"])
DEFAULT_KEYS = ("id_ed25519.pub", "id_rsa.pub", "id_ecdsa.pub")


@dataclass
class ImageChoice:
    """What --image resolved to: the imageReference to send, whether the image is specialized
    (None when it cannot be told here), and the LUNs its data disks take."""

    reference: dict
    specialized: Optional[bool] = None
    data_luns: set = field(default_factory=set)


def resolve_image(session: Session, resource_group: str, value: str, location: str) -> ImageChoice:
    """--image as the VM's imageReference, with what the image says about itself."""
    if paths.is_resource_id(value):
        kind = paths.compute_types(value)
        if kind not in IMAGE_KINDS:
            raise usage_error(f"--image {value!r} is not an image id: give {IMAGE_FORMS}.")
        return describe_image(session, value, kind, location)
    if ":" in value:
        parts = [part.strip() for part in value.split(":")]
        if len(parts) != 4 or not all(parts):
            raise usage_error(f"--image {value!r} is not a URN Publisher:Offer:Sku:Version (or …:latest).")
        publisher, offer, sku, version = parts
        return ImageChoice({"publisher": publisher, "offer": offer, "sku": sku, "version": version}, False)
    if "/" in value or not value.strip():
        raise usage_error(f"--image {value!r}: give {IMAGE_FORMS}.")
    path = paths.compute(session.subscription, resource_group, "images", value)
    if not session.client.exists(path, API_IMAGE):
        raise ArmError("ImageNotFound", f"there is no managed image named {value!r} in resource group "
                       f"{resource_group!r}. --image takes {IMAGE_FORMS}.", target="--image")
    return describe_image(session, path, ["images"], location)


def describe_image(session: Session, image_id: str, kind: list, location: str) -> ImageChoice:
    """Read the image (or its definition) for its OS state and data disk LUNs; the server
    judges everything else (replication, end of life, rules)."""
    if kind == ["images"]:
        image = session.client.get(image_id, API_IMAGE)
        storage = (image.get("properties") or {}).get("storageProfile") or {}
        state = (storage.get("osDisk") or {}).get("osState")
        luns = {disk.get("lun") for disk in storage.get("dataDisks") or []}
        return ImageChoice({"id": image_id}, state == "Specialized" if state else None, luns)
    definition_id = image_id if kind == ["galleries", "images"] else image_id.rstrip("/").rsplit("/", 2)[0]
    definition = session.client.get(definition_id, API_GALLERY)
    specialized = (definition.get("properties") or {}).get("osState") == "Specialized"
    version_id = image_id
    if kind != ["galleries", "images", "versions"] or image_id.rstrip("/").lower().endswith("/latest"):
        version_id = definition_id + "/latestVersion"  # Galley's own: the version `latest` is here
        found = session.client.send("GET", version_id, API_GALLERY, params={"region": location}, allow=(404,))
        version = found.json() if found.status_code == 200 else {}
    else:
        version = session.client.get(version_id, API_GALLERY)
    storage = (version.get("properties") or {}).get("storageProfile") or {}
    luns = {disk.get("lun") for disk in storage.get("dataDiskImages") or []}
    return ImageChoice({"id": image_id}, specialized, luns)


def disk_id(session: Session, resource_group: str, value: str) -> str:
    """A managed disk's id as given, or the id of the disk of that name in -g."""
    return value if paths.is_resource_id(value) else paths.compute(session.subscription, resource_group, "disks", value)


def data_disks(session: Session, resource_group: str, sizes: list[int], attach: list[str], taken: set,
               delete_option: Optional[str]) -> list[dict]:
    """New empty disks (--data-disk-sizes-gb) then attached ones (--attach-data-disks), at the
    lowest LUNs the image's own data disks leave free."""
    luns = (lun for lun in range(64) if lun not in taken)
    extra = {"deleteOption": delete_option} if delete_option else {}
    disks = [{"lun": next(luns), "createOption": "Empty", "diskSizeGB": size, **extra} for size in sizes]
    for value in attach:
        target = disk_id(session, resource_group, value)
        session.client.get(target, API_DISK)  # a clear error now for a disk that is not there
        disks.append({"lun": next(luns), "createOption": "Attach", "managedDisk": {"id": target}, **extra})
    return disks


def ssh_keys(values: list[str], generate: bool) -> list[str]:
    """The public keys of --ssh-key-values (each a key, or a file holding keys), else the user's
    own ~/.ssh key, made first with --generate-ssh-keys when there is none."""
    keys: list[str] = []
    for value in values:
        path = Path(value).expanduser()
        if path.is_file():
            keys += [line.strip() for line in path.read_text().splitlines() if line.strip()]
        elif value.strip().startswith(("ssh-", "ecdsa-", "sk-")):
            keys.append(value.strip())
        else:
            raise usage_error(f"--ssh-key-values {value!r} is neither a public key file nor an OpenSSH public key.")
    if keys:
        return keys
    ssh_dir = Path.home() / ".ssh"
    for name in DEFAULT_KEYS:
        if (ssh_dir / name).is_file():
            return [(ssh_dir / name).read_text().strip()]
    if not generate:
        return []
    return [generate_key(ssh_dir / "id_ed25519")]


def generate_key(private: Path) -> str:
    """Write a new ed25519 key pair (OpenSSH formats, the private key 0600) and return the public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                               serialization.NoEncryption())
    private.touch(mode=0o600)
    private.write_bytes(secret)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    text = public.decode() + " galley"
    private.with_name(private.name + ".pub").write_text(text + "\n")
    return text


def custom_data(value: str) -> str:
    """--custom-data: a file's content, or the text itself, base64-encoded as ARM wants it."""
    path = Path(value).expanduser()
    data = path.read_bytes() if path.is_file() else value.encode()
    return base64.b64encode(data).decode()


def os_profile(name: str, user: str, keys: list[str], password: Optional[str], computer_name: Optional[str],
               custom: Optional[str]) -> dict:
    profile: dict = {"computerName": computer_name or name, "adminUsername": user,
                     "linuxConfiguration": {"disablePasswordAuthentication": password is None}}
    if keys:
        profile["linuxConfiguration"]["ssh"] = {"publicKeys": [
            {"path": f"/home/{user}/.ssh/authorized_keys", "keyData": key} for key in keys]}
    if password is not None:
        profile["adminPassword"] = password
    if custom is not None:
        profile["customData"] = custom_data(custom)
    return profile
