"""`galley storage …`: storage accounts (Microsoft.Storage/storageAccounts) and their blobs,
the "VHD in a storage account" sources of image versions and managed images.

Blobs use Galley's small blob data plane at `{server}/blob/{account}/{container}/{blob}`; the
URI `https://{account}.blob.core.windows.net/{container}/{blob}` names the same blob."""

from typing import Annotated, Any, Optional
from urllib.parse import quote

import typer

from galley.cli.client import API_STORAGE, json_body
from galley.cli.common import (
    LocationOpt, NameOpt, NoWaitOpt, ResourceGroupOpt, Session, TagsOpt, arm_command, group_location, usage_error,
    with_tags,
)
from galley.cli.kinds import OPTIONAL_RESOURCE_GROUP, RESOURCE_GROUP, Kind, option
from galley.cli.output import GROUP, LOCATION, NAME, STATE, field
from galley.cli.transfer import InFileOpt, OutFileOpt, UploadFormatOpt, download_file, upload_file

app = typer.Typer(help="Manage storage accounts and the VHD blobs in them.", no_args_is_help=True)
account_app = typer.Typer(help="Manage storage accounts.", no_args_is_help=True)
blob_app = typer.Typer(help="Upload, list, download and delete blobs (disk images) in storage accounts.",
                       no_args_is_help=True)
app.add_typer(account_app, name="account")
app.add_typer(blob_app, name="blob")

STORAGE = "Microsoft.Storage/storageAccounts"


def account_path(sub: str, rg: str, name: Optional[str] = None) -> str:
    base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{STORAGE}"
    return f"{base}/{name}" if name else base


def accounts_path(sub: str, rg: Optional[str]) -> str:
    return account_path(sub, rg) if rg else f"/subscriptions/{sub}/providers/{STORAGE}"


ACCOUNT_COLUMNS = (NAME, GROUP, LOCATION, ("Sku", field("sku.name")),
                   ("BlobEndpoint", field("properties.primaryEndpoints.blob")), STATE)
ACCOUNTS = Kind(account_app, API_STORAGE, ACCOUNT_COLUMNS, keys=(RESOURCE_GROUP, option("name", NameOpt)),
                path=account_path, list_keys=(OPTIONAL_RESOURCE_GROUP,), list_path=accounts_path)


@arm_command(account_app, "create", ACCOUNT_COLUMNS)
def create_account(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: Annotated[str, typer.Option("--name", "-n", help="Storage account name: 3-24 lower-case letters and digits, unique in the installation.")],
    location: LocationOpt = None,
    sku: Annotated[str, typer.Option("--sku", help="Standard_LRS, Standard_GRS, Standard_RAGRS, Standard_ZRS, Premium_LRS, ...")] = "Standard_LRS",
    kind: Annotated[str, typer.Option("--kind", help="Account kind.")] = "StorageV2",
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create a storage account. The location defaults to the resource group's."""
    body = with_tags({"location": location or group_location(session, resource_group), "sku": {"name": sku},
                      "kind": kind}, tags)
    return session.client.put(account_path(session.subscription, resource_group, name), API_STORAGE, body,
                              no_wait=no_wait)


ACCOUNTS.add_show("Show a storage account.")
ACCOUNTS.add_list("List storage accounts in a resource group, or in the subscription without -g.")
ACCOUNTS.add_delete("Delete a storage account.")


# -- blobs --------------------------------------------------------------------------------

AccountOpt = Annotated[str, typer.Option("--account-name", help="Storage account name.")]
ContainerOpt = Annotated[str, typer.Option("--container-name", "-c", help="Container name.")]
BlobOpt = Annotated[str, typer.Option("--name", "-n", help="Blob name.")]

BLOB_COLUMNS = (
    ("Name", field("name")), ("Container", field("container")), ("Account", field("account")),
    ("Size", field("size")), ("Location", field("location")), ("AzureUrl", field("azureUrl")),
)


def container_path(account: str, container: str) -> str:
    for what, value in (("--account-name", account), ("--container-name", container)):
        if not value or "/" in value:
            raise usage_error(f"{what} must be a non-empty name without '/'.")
    return f"/blob/{quote(account, safe='')}/{quote(container, safe='')}"


def blob_path(account: str, container: str, blob: str) -> str:
    if not blob.strip("/"):
        raise usage_error("--name must name a blob.")
    return f"{container_path(account, container)}/{quote(blob, safe='/')}"


@arm_command(blob_app, "upload", BLOB_COLUMNS)
def upload_blob(
    session: Session,
    *,
    account: AccountOpt,
    container: ContainerOpt,
    name: BlobOpt,
    file: InFileOpt,
    blob_type: Annotated[str, typer.Option("--type", "-t", help="Blob type: only page blobs (disk images) are stored.")] = "page",
    fmt: UploadFormatOpt = None,
):
    """Upload a disk image (VHD, raw or qcow2) as a page blob.

    Prints the blob, with the `azureUrl` to give as --os-vhd-uri. Progress shows on stderr."""
    if blob_type.lower() != "page":
        raise usage_error(f"--type {blob_type}: Galley stores disk images, which are page blobs; use --type page.")
    chosen = fmt.value if fmt is not None else None
    return upload_file(session, blob_path(account, container, name), None, file,
                       {"format": chosen} if chosen else None, label=name)


@arm_command(blob_app, "list", BLOB_COLUMNS)
def list_blobs(session: Session, *, account: AccountOpt, container: ContainerOpt):
    """List the blobs of a container."""
    body = json_body(session.client.send("GET", container_path(account, container))) or {}
    return body.get("value") or []


@arm_command(blob_app, "download", (("File", field("file")), ("Bytes", field("bytes")), ("Blob", field("blob"))))
def download_blob(session: Session, *, account: AccountOpt, container: ContainerOpt, name: BlobOpt,
                  file: OutFileOpt):
    """Download a blob as a fixed VHD (FILE.partial until complete)."""
    path = blob_path(account, container, name)
    size = download_file(session, path, None, file, label=name)
    return {"file": str(file.resolve()), "bytes": size, "blob": f"{account}/{container}/{name}"}


@arm_command(blob_app, "delete")
def delete_blob(session: Session, *, account: AccountOpt, container: ContainerOpt, name: BlobOpt) -> Any:
    """Delete a blob. Versions and images already built from it keep their content."""
    session.client.send("DELETE", blob_path(account, container, name))
    return None
