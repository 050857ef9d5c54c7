"""A build run whose node died during distribution starts over on another node (attempt 2): it
removes the staging snapshots attempt 1 made and makes its managed image and image version again,
instead of failing on "already exists" or publishing a second version of the same run."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from galley.domain.ids import IMAGE_VERSION_TYPE, SNAPSHOT_TYPE
from galley.jobs.build import distribute
from galley.jobs.context import JobContext

from .data_helpers import MiB, compute_client, gallery_chain, random_raw
from .sdk_helpers import resource_id
from .servers import SUBSCRIPTION


def test_attempt_2_replaces_what_attempt_1_distributed(sqlite_server, tmp_path):
    url = sqlite_server.url
    gallery_chain(compute_client(url), url)
    state = sqlite_server.app.state
    ctx = JobContext(state.store, state.content, state.content.locations, service=state.service)
    template = SimpleNamespace(
        id=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/tpl",
        name="tpl", resource_group="rg", location="eastus", subscription_id=SUBSCRIPTION,
        properties={"exactStagingResourceGroup": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/IT_rg_tpl"})
    image_target = {"type": "ManagedImage", "imageId": resource_id("images/built"), "location": "eastus",
                    "runOutputName": "mi"}
    version_target = {"type": "SharedImage", "galleryImageId": resource_id("galleries/gal/images/def"),
                      "runOutputName": "sig", "replicationRegions": ["eastus"]}
    said: list[str] = []
    never = threading.Event()

    def attempt(number: int, seed: int):
        distributor = distribute.Distributor(ctx, template, "run1", said.append, never.is_set, attempt=number)
        image = random_raw(tmp_path / f"built{number}.raw", 20 * MiB, seed=seed, pieces=[(0, 2 * MiB)])
        distributor.upload(image)
        made = distributor.managed_image(image_target), distributor.shared_image(version_target, None)
        return distributor, made

    first, _ = attempt(1, seed=1)  # its node dies here: its staging snapshot is never deleted
    second, (managed, version) = attempt(2, seed=2)
    second.remove_snapshots()

    with state.store.read() as tx:
        snapshots = [s.id for s in tx.all_of_type(SNAPSHOT_TYPE)]
        versions = tx.version_names(resource_id("galleries/gal/images/def"))
        image = tx.get(resource_id("images/built"))
        made_version = tx.get(version.artifact_id)
    assert snapshots == [], snapshots  # attempt 1's went at the start of attempt 2, attempt 2's at its end
    assert managed.provisioning_state == "Succeeded" and version.provisioning_state == "Succeeded"
    assert versions == ["1.0.0"], versions  # attempt 1's 1.0.0 was replaced, not followed by 1.0.1
    source = image.properties["storageProfile"]["osDisk"]["snapshot"]["id"]
    assert source == second.snapshots["eastus"] != first.snapshots["eastus"], source
    assert made_version.properties["storageProfile"]["osDiskImage"]["source"]["id"] == second.snapshots["eastus"]
    assert any("made by an earlier attempt of this run" in line for line in said), said
    assert made_version.type == IMAGE_VERSION_TYPE
