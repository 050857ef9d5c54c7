"""What the portal's core browser tests share: a signed-in page that fails its test on any console
error (a CSP violation is one), and resources made through the API for the pages to show."""

from __future__ import annotations

import json
from pathlib import Path

from . import admin_http as httpx
from .browser import TOKEN_KEY, new_page
from .data_helpers import MiB, compute_client, create_upload_disk, random_raw, upload_ok
from .sdk_helpers import DISK_API, GALLERY_API, RESOURCES_API, make_group
from .servers import SUBSCRIPTION

GROUP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg"
COMPUTE = f"{GROUP_ID}/providers/Microsoft.Compute"


class Console:
    """Console errors and uncaught exceptions of a page. A 4xx/5xx answer of the API, which the
    page handles and shows, is logged by Chromium as "Failed to load resource": those are left
    out, but not for the portal's own files (a missing script is an error)."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and "/portal/static/" not in url:
            return
        self.errors.append(f"{message.text} ({url})")

    def assert_clean(self) -> None:
        assert not self.errors, self.errors


def portal(browser, url: str, token: str, path: str = "/", **size):
    """(page, console): the portal at `path` holding `token`, its console watched from the start."""
    page = new_page(browser, **size)
    console = Console(page)
    record = json.dumps({"accessToken": token, "expiresOn": 4102444800})
    page.add_init_script(f"sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(record)});")
    page.goto(url + path)
    return page, console


PASSWORD = "Portal-tests-9"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def user(url: str, name: str, role: str | None = None, scope: str = f"/subscriptions/{SUBSCRIPTION}") -> dict:
    """A user (Galley.Identity/users) who signs in with PASSWORD; with `role` at `scope`."""
    response = httpx.post(f"{url}/providers/Galley.Identity/users", json={"name": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    made = response.json()
    if role:
        assign_role(url, scope, role, made["id"])
    return made


def assign_role(url: str, scope: str, role: str, principal_id: str) -> None:
    import uuid
    response = httpx.put(f"{url}{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                         params={"api-version": "2022-04-01"}, json={"properties": {
                             "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                             "principalId": principal_id}})
    assert response.status_code == 201, response.text


def signed_in(browser, url: str, name: str, path: str = "/", **size):
    """(page, console): `name` signed in through the real sign-in page, then the portal at `path`."""
    from .browser import sign_in
    page = new_page(browser, **size)
    console = Console(page)
    sign_in(page, url, name, PASSWORD)
    if path != "/":
        page.goto(url + path)
    return page, console


def put(url: str, path: str, body: dict, api: str) -> dict:
    response = httpx.put(f"{url}{path}?api-version={api}", json=body)
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def disk_with_data(url: str, tmp: Path, name: str = "osdisk") -> str:
    """A Linux disk holding 4 MiB of random data (of 24 MiB), uploaded through the API: its id."""
    make_group(url)
    disk = create_upload_disk(compute_client(url), name, 24 * MiB)
    raw = random_raw(tmp / f"{name}.raw", 24 * MiB, seed=13, pieces=[(0, 4 * MiB)])
    upload_ok(url, disk.id, raw, "raw")
    return disk.id


def gallery(url: str, name: str) -> str:
    make_group(url)
    return put(url, f"{COMPUTE}/galleries/{name}", {"location": "eastus"}, GALLERY_API)["id"]


def definition(url: str, gallery_id: str, name: str) -> str:
    return put(url, f"{gallery_id}/images/{name}", {"location": "eastus", "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "galley", "offer": gallery_id.rsplit("/", 1)[1], "sku": name}}}, GALLERY_API)["id"]


def empty_snapshot(url: str, name: str) -> str:
    make_group(url)
    return put(url, f"{COMPUTE}/snapshots/{name}", {"location": "eastus", "properties": {
        "creationData": {"createOption": "Empty"}, "diskSizeGB": 1, "osType": "Linux"}}, DISK_API)["id"]


def version(url: str, definition_id: str, name: str, source_id: str, regions=("eastus",)) -> dict:
    storage = ({"osDiskImage": {"source": {"id": source_id}}})
    return put(url, f"{definition_id}/versions/{name}", {"location": "eastus", "properties": {
        "publishingProfile": {"targetRegions": [{"name": r, "regionalReplicaCount": 1} for r in regions]},
        "storageProfile": storage}}, GALLERY_API)


def wait_succeeded(url: str, resource_id: str, api: str = GALLERY_API, timeout: float = 60.0) -> dict:
    import time
    deadline = time.time() + timeout
    while True:
        body = httpx.get(f"{url}{resource_id}", params={"api-version": api}).json()
        state = body.get("properties", {}).get("provisioningState")
        if state in ("Succeeded", "Failed") or time.time() > deadline:
            assert state == "Succeeded", body
            return body
        time.sleep(0.2)


def seed_versions(app, definition_id: str, count: int, snapshots: list[str]) -> None:
    """`count` versions (1.{i // 1000}.{i % 1000}) of empty snapshots, through the service layer
    as benchmarks/control_plane.py seeds them: a batch of one version per snapshot (a source may
    build one version at a time), the worker finishing each batch. The app runs no worker thread
    (ThreadServer(run_worker=False)), so run_pending does all of it here."""
    from galley.domain.ids import IMAGE_VERSION_TYPE
    from galley.domain.service import ResourceRef
    from galley.content.object_store import FolderStore

    subscription, group = definition_id.split("/")[2], definition_id.split("/")[4]
    service, worker = app.state.service, app.state.worker
    from sqlalchemy import event

    def relaxed(connection, _record, _proxy) -> None:  # setup only: no fsync per commit
        connection.execute("PRAGMA synchronous=NORMAL")

    engine = app.state.store.engine
    event.listen(engine, "checkout", relaxed)
    engine.dispose()
    store_sync = FolderStore.__dict__["sync"]
    FolderStore.sync = lambda self: None  # an os.sync() per replica of an empty snapshot: nothing to flush
    try:
        worker.run_pending()  # the snapshots (and anything else queued) first
        for i in range(count):
            name = f"1.{i // 1000}.{i % 1000}"
            ref = ResourceRef(id=f"{definition_id}/versions/{name}", type=IMAGE_VERSION_TYPE, name=name,
                              subscription_id=subscription, resource_group=group)
            service.put(ref, {"location": "eastus", "properties": {
                "publishingProfile": {"targetRegions": [{"name": "eastus", "regionalReplicaCount": 1}]},
                "storageProfile": {"osDiskImage": {"source": {"id": snapshots[i % len(snapshots)]}}}}})
            if (i + 1) % len(snapshots) == 0 or i + 1 == count:
                worker.run_pending()
    finally:
        FolderStore.sync = store_sync
        event.remove(engine, "checkout", relaxed)
        engine.dispose()


__all__ = ["COMPUTE", "GROUP_ID", "RESOURCES_API", "portal", "disk_with_data", "gallery", "definition",
           "empty_snapshot", "version", "wait_succeeded", "seed_versions", "user", "assign_role", "signed_in"]
