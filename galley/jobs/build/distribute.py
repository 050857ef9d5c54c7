"""Distribute: the built image becomes managed images, gallery image versions and VHDs.

Everything is made through the ResourceService, as a user would make it, so that every rule of
the control plane applies and the regular worker does the content work:

1. a snapshot in the template's staging resource group is created with createOption Upload and
   the image is uploaded into it (the same lease and ingest an HTTP upload uses);
2. a target in another region gets a snapshot copied from it into that region;
3. a managed image is created from its region's snapshot; a gallery image version from the
   snapshot in the gallery's region, replicated to the target's regions; a VHD is the
   snapshot's content copied to a blob (a staging storage account's, unless a uri is given).

The staging snapshots are deleted when the run ends; a VHD stays until its template is deleted.

A region store that is unavailable (a volume server down: it refuses writes) does not fail the
run: the step that writes to it is tried again every STORE_RETRY_SECONDS, for up to
STORE_PATIENCE_SECONDS, saying so in the log (the regular worker's operations it waits for do the
same by themselves: they stay queued and are taken up again).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from ... import uploads
from ...content.raw import RawImage
from ...content.store_outage import store_unavailable
from ...domain.errors import ArmError
from ...domain.ids import (IMAGE_VERSION_TYPE, SNAPSHOT_TYPE, STORAGE_ACCOUNT_TYPE, blob_key,
                           compute_id, key_of, parent_id, parse_resource_id, resource_group_id)
from ...domain.image_template import RunOutput
from ...domain.resource import IN_PROGRESS, SUCCEEDED, Resource
from ...domain.service import ResourceRef
from ...domain.sources import parse_blob_uri
from ...store.outage import first_line
from ..content_work import copy_into
from ..context import JobContext

TEMPLATE_TAG = "galleyImageTemplate"  # marks what a template's runs made in its staging group
VHD_CONTAINER = "vhds"
OPERATION_POLL_SECONDS = 0.2
VERSION_ATTEMPTS = 5
STORE_RETRY_SECONDS = 10.0
STORE_PATIENCE_SECONDS = 30 * 60.0


class DistributionFailed(Exception):
    pass


@dataclass
class Distributor:
    ctx: JobContext
    template: Resource
    run_id: str
    say: callable
    cancelled: callable
    attempt: int = 1  # > 1: the run started over after its node died (see forget_earlier_attempts)

    def __post_init__(self) -> None:
        group_id = self.template.properties["exactStagingResourceGroup"]
        parts = group_id.strip("/").split("/")
        self.subscription, self.group = parts[1], parts[3]
        self.snapshots: dict[str, str] = {}  # region → staging snapshot id
        self.tags = {"createdBy": "AzureVMImageBuilder", "imageTemplateName": self.template.name,
                     "imageTemplateResourceGroupName": self.template.resource_group, TEMPLATE_TAG: self.template.id}

    # ---- the built image, uploaded once

    def upload(self, image: Path) -> None:
        if self.attempt > 1:
            self.forget_earlier_attempts()
        service = self.ctx.service
        group = service.put_resource_group(self.subscription, self.group,
                                           {"location": self.template.location, "tags": self.tags})
        if group.created:
            self.say(f"created staging resource group {self.group}")
        region = self.template.location
        snapshot_id = self._snapshot_id(region)
        size = image.stat().st_size
        self._create(snapshot_id, {
            "location": region, "tags": self.tags,
            "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": size + 512},
                           "osType": "Linux", "hyperVGeneration": "V1"}})
        self._through_store_outages("uploading the image", lambda: self._ingest(snapshot_id, image))
        self.snapshots[region] = snapshot_id
        self.say(f"uploaded the image ({size:,} bytes) to staging snapshot {snapshot_id}")

    def _ingest(self, snapshot_id: str, image: Path) -> None:
        service = self.ctx.service
        owner = uploads.this_process()
        service.begin_upload(snapshot_id, SNAPSHOT_TYPE, owner, uploads.LEASE_SECONDS, uploads.owner_alive)
        stored = None
        try:
            with RawImage(image) as raw:
                self.ctx.content.ingest(raw, self.ctx.locations.home_store(self.template.location),
                                        (key_of(snapshot_id), -1), lambda n: self.ctx.heartbeat())
            stored = image.stat().st_size
        finally:
            service.end_upload(snapshot_id, stored)

    def _through_store_outages(self, what: str, step: callable):
        """`step()`, tried again while it fails because a store is unavailable (see the module's
        docstring); canceling the run stops the waiting."""
        first_failure = None
        while True:
            try:
                return step()
            except Exception as error:
                if not store_unavailable(error):
                    raise
                first_failure = first_failure or time.monotonic()
                if time.monotonic() - first_failure > STORE_PATIENCE_SECONDS:
                    raise DistributionFailed(f"{what}: the object store has been unavailable for "
                                             f"{STORE_PATIENCE_SECONDS / 60:.0f} minutes ({first_line(error)})") from error
                self.say(f"{what}: the object store is unavailable ({first_line(error)}); trying again in "
                         f"{STORE_RETRY_SECONDS:g} s")
            until = time.monotonic() + STORE_RETRY_SECONDS
            while time.monotonic() < until:
                if self.cancelled():
                    raise DistributionCanceled(f"the run was canceled while {what} waited for the object store")
                self.ctx.heartbeat()
                time.sleep(min(OPERATION_POLL_SECONDS * 5, max(0.0, until - time.monotonic())))

    def snapshot_in(self, region: str) -> str:
        if region not in self.snapshots:
            snapshot_id = self._snapshot_id(region)
            self._create(snapshot_id, {
                "location": region, "tags": self.tags,
                "properties": {"creationData": {"createOption": "Copy",
                                                "sourceResourceId": self.snapshots[self.template.location]},
                               "osType": "Linux", "hyperVGeneration": "V1"}})
            self.snapshots[region] = snapshot_id
            self.say(f"copied the image to {region} as {snapshot_id}")
        return self.snapshots[region]

    def remove_snapshots(self) -> None:
        for snapshot_id in self.snapshots.values():
            try:
                self._wait(self.ctx.service.delete(snapshot_id, SNAPSHOT_TYPE), snapshot_id)
            except Exception as failed:  # staging leftovers go with the template; the run's outcome stands
                self.say(f"warning: could not delete staging snapshot {snapshot_id}: {failed}")

    # ---- targets

    def managed_image(self, target: dict) -> RunOutput:
        image_id = target["imageId"]
        snapshot_id = self.snapshot_in(target["location"])
        self._create(image_id, {
            "location": target["location"], "tags": target.get("artifactTags") or {},
            "properties": {"hyperVGeneration": "V1", "storageProfile": {"osDisk": {
                "osType": "Linux", "osState": "Generalized", "snapshot": {"id": snapshot_id}}}}})
        return RunOutput(target["runOutputName"], SUCCEEDED, artifact_id=image_id)

    def shared_image(self, target: dict, source_version: str | None) -> RunOutput:
        """A new version: the next number (another run taking it at the same moment makes this
        one take the number after), or the source's number with versioning Source."""
        definition_id = target["galleryImageId"]
        with self.ctx.sql.read() as tx:
            gallery = tx.get(parent_id(definition_id))
        if gallery is None:
            raise DistributionFailed(f"the gallery of {definition_id} no longer exists")
        regions = target.get("targetRegions") or [
            {"name": r, "replicaCount": 1, "storageAccountType": target.get("storageAccountType", "Standard_LRS")}
            for r in target["replicationRegions"]]
        publishing = {"targetRegions": [{"name": r["name"], "regionalReplicaCount": r["replicaCount"],
                                         "storageAccountType": r["storageAccountType"]} for r in regions]}
        if "excludeFromLatest" in target:
            publishing["excludeFromLatest"] = target["excludeFromLatest"]
        if "replicationMode" in target:
            publishing["replicationMode"] = target["replicationMode"]
        body = {"location": gallery.location, "tags": target.get("artifactTags") or {},
                "properties": {"publishingProfile": publishing,
                               "storageProfile": {"osDiskImage": {"source": {"id": self.snapshot_in(gallery.location)}}}}}
        if self.attempt > 1:  # the version an earlier attempt made goes: this one makes it again
            with self.ctx.sql.read() as tx:
                names = tx.version_names(definition_id)
            for name in names:
                self._replace_earlier(f"{definition_id}/versions/{name}", IMAGE_VERSION_TYPE)
        for _ in range(VERSION_ATTEMPTS):
            with self.ctx.sql.read() as tx:
                existing = tx.version_names(definition_id)
            version_id = f"{definition_id}/versions/{next_version(existing, target.get('versioning'), source_version)}"
            try:
                self._create(version_id, body)
                return RunOutput(target["runOutputName"], SUCCEEDED, artifact_id=version_id)
            except VersionTaken:
                if (target.get("versioning") or {}).get("scheme") == "Source":
                    raise DistributionFailed(f"version {version_id} already exists (versioning scheme Source "
                                             "uses the source's version number)") from None
        raise DistributionFailed(f"could not find a free version number in {definition_id}")

    def vhd(self, target: dict) -> RunOutput:
        if target.get("uri"):
            account_name, container, blob = parse_blob_uri(target["uri"], "uri")
            with self.ctx.sql.read() as tx:
                account = tx.find_named(STORAGE_ACCOUNT_TYPE, account_name)
            if account is None:
                raise DistributionFailed(f"storage account {account_name} of {target['uri']} does not exist")
            uri = target["uri"]
        else:
            account = self._staging_account()
            container, blob = VHD_CONTAINER, f"{self.template.name}-{self.run_id}.vhd"
            uri = f"https://{account.name}.blob.core.windows.net/{container}/{blob}"
        source = self.ctx.content.repo.disk_contents(key_of(self.snapshot_in(account.location)))[-1]
        self._through_store_outages(f"copying the image to {uri}", lambda: copy_into(
            self.ctx, source, self.ctx.locations.home_store(account.location),
            (blob_key(account.id, container, blob), -1), self.template.subscription_id))
        return RunOutput(target["runOutputName"], SUCCEEDED, artifact_uri=uri)

    def _staging_account(self) -> Resource:
        digest = hashlib.sha256(self.template.id.lower().encode()).hexdigest()[:15]
        name = f"galleyvhd{digest}"
        account_id = (f"{resource_group_id(self.subscription, self.group)}/providers/"
                      f"{STORAGE_ACCOUNT_TYPE}/{name}")
        with self.ctx.sql.read() as tx:
            account = tx.get(account_id)
        if account is None:
            self._create(account_id, {"location": self.template.location, "tags": self.tags,
                                                            "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"})
            with self.ctx.sql.read() as tx:
                account = tx.get(account_id)
        return account

    # ---- through the service, waiting for the regular worker

    def _snapshot_id(self, region: str) -> str:
        again = f"a{self.attempt}-" if self.attempt > 1 else ""
        return compute_id(self.subscription, self.group, "snapshots", f"{self.template.name}-{self.run_id}-{again}{region}")

    # ---- what an earlier attempt of this run made before its node died

    def forget_earlier_attempts(self) -> None:
        """Delete the staging snapshots earlier attempts of this run made (artifacts made from
        them are replaced when this attempt makes the same ones: see _replace_earlier)."""
        prefix = self._run_prefix()
        with self.ctx.sql.read() as tx:
            left = [s.id for s in tx.all_of_type(SNAPSHOT_TYPE) if s.id.lower().startswith(prefix)]
        for snapshot_id in left:
            self._remove(snapshot_id, SNAPSHOT_TYPE)

    def _run_prefix(self) -> str:
        return compute_id(self.subscription, self.group, "snapshots", f"{self.template.name}-{self.run_id}-").lower()

    def _from_earlier_attempt(self, resource: Resource | None) -> bool:
        """A managed image or image version made from a staging snapshot of this run that is not
        this attempt's."""
        if resource is None or self.attempt == 1:
            return False
        storage = resource.properties.get("storageProfile") or {}
        source = (((storage.get("osDisk") or {}).get("snapshot") or {}).get("id")
                  or ((storage.get("osDiskImage") or {}).get("source") or {}).get("id") or "").lower()
        return source.startswith(self._run_prefix()) and source not in {s.lower() for s in self.snapshots.values()}

    def _remove(self, resource_id: str, resource_type: str) -> None:
        self.say(f"deleting {resource_id}, made by an earlier attempt of this run")
        try:
            self._wait(self.ctx.service.delete(resource_id, resource_type), resource_id)
        except (ArmError, DistributionFailed) as failed:
            self.say(f"warning: could not delete {resource_id}: {failed}")

    def _replace_earlier(self, resource_id: str, resource_type: str) -> bool:
        with self.ctx.sql.read() as tx:
            existing = tx.get(resource_id)
        if not self._from_earlier_attempt(existing):
            return False
        self._remove(resource_id, resource_type)
        return True

    def _create(self, resource_id: str, body: dict) -> None:
        parsed = parse_resource_id(resource_id, "id")
        ref = ResourceRef(parsed.id, parsed.type, parsed.names[-1], parsed.subscription, parsed.resource_group)
        try:
            accepted = self.ctx.service.put(ref, body, create_only=True)
        except ArmError as refused:
            if refused.code == "ResourceExists":
                if parsed.type == IMAGE_VERSION_TYPE:
                    raise VersionTaken(resource_id) from None
                if self._replace_earlier(resource_id, parsed.type):
                    return self._create(resource_id, body)
                raise DistributionFailed(f"{resource_id} already exists; delete it or give the distribute "
                                         "target another name, then run again") from None
            raise DistributionFailed(f"creating {resource_id} was refused: {refused}") from None
        self._wait(accepted.operation, resource_id)

    def _wait(self, operation, what: str) -> None:
        while operation is not None:
            current = self.ctx.service.operation(operation.id)
            if current.status == SUCCEEDED:
                return
            if current.status != IN_PROGRESS:
                detail = (current.error or {}).get("message", current.status)
                raise DistributionFailed(f"{current.action} of {what} failed: {detail}")
            if self.cancelled():
                raise DistributionCanceled(f"the run was canceled while {what} was being made")
            self.ctx.heartbeat()
            time.sleep(OPERATION_POLL_SECONDS)
        return


class DistributionCanceled(DistributionFailed):
    pass


class VersionTaken(Exception):
    pass


def next_version(existing: list[str], versioning: dict | None, source_version: str | None) -> str:
    """The version a sharedImage target gets: the next patch after the newest (of `major`, when
    versioning gives one), 1.0.0 (or major.0.0) for the first; with scheme Source, the source's."""
    if versioning and versioning.get("scheme") == "Source":
        if source_version is None:
            raise DistributionFailed("versioning scheme Source needs a platform image or gallery image version "
                                     "source; a managed image has no version")
        return source_version
    major = (versioning or {}).get("major")
    parsed = []
    for name in existing:
        parts = name.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            parsed.append(tuple(int(p) for p in parts))
    if major is not None and major >= 0:
        parsed = [p for p in parsed if p[0] == major]
        if not parsed:
            return f"{major}.0.0"
    if not parsed:
        return "1.0.0"
    newest = max(parsed)
    return f"{newest[0]}.{newest[1]}.{newest[2] + 1}"
