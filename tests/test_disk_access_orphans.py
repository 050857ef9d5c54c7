"""Disk access sessions whose holder never comes back: once the holder is lost and the session has
run out, another node ends it as an expiry on the holder would (nothing written becomes content,
the disk is usable again), exactly once, and the holder starting again later does not bring it
back. Before the expiry a lost holder's session stays a 503 to retry."""

from __future__ import annotations

import os
import threading
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import models as m
from sqlalchemy import create_engine, text

from galley.observability.nodes import LOST_AFTER_SECONDS

from . import admin_http as httpx
from .conftest import sdk_client
from .sdk_helpers import DISK_API, compute_url, quick_polls, resource_id
from .servers import ThreadServer
from .test_disk_access import MIB, blob, download_raw, footer, grant, revoke, upload_disk
from .test_disk_access_nodes import SIZE, on, two_nodes


def _database(url: str, sql: str, **params) -> list:
    """A statement on the nodes' shared database."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def session_rows(url: str) -> list[tuple]:
    return _database(url, "SELECT id, node_id FROM disk_access_sessions")


def run_out(url: str) -> None:
    """The sessions' expiry passes, as the surviving nodes see it (instead of waiting for it)."""
    _database(url, "UPDATE disk_access_sessions SET expires_at = :past", past=time.time() - 1)


def killed(node: ThreadServer, url: str) -> None:
    """The node dies without a word: it stops serving, and its row looks like a kill -9's (not
    marked stopped, its last heartbeat older than LOST_AFTER_SECONDS)."""
    node.__exit__(None, None, None)
    _database(url, "UPDATE nodes SET stopped_at = NULL, heartbeat_at = :old WHERE id = :id",
              old=time.time() - LOST_AFTER_SECONDS - 1, id=node.app.state.node.id)


def disk_state(node: ThreadServer, name: str) -> str:
    answer = httpx.get(compute_url(node.url, f"disks/{name}"), params={"api-version": DISK_API})
    return answer.json()["properties"]["diskState"]


def end_access(node: ThreadServer, name: str):
    return httpx.post(compute_url(node.url, f"disks/{name}/endGetAccess"), params={"api-version": DISK_API})


def put_page(url: str):
    return httpx.put(url + "&comp=page", content=b"\x01" * 512, headers={
        "x-ms-page-write": "update", "x-ms-range": "bytes=0-511", "x-ms-version": "2021-08-06"})


def test_a_lost_holders_write_session_ends_once_run_out_and_stays_ended_when_it_returns(tmp_path, database_url):
    with two_nodes(tmp_path, database_url) as (holder, other):
        via_holder = quick_polls(sdk_client(holder.url))
        upload_disk(via_holder, "lost", SIZE)
        sas = grant(via_holder, "lost")
        blob(sas).upload_page(os.urandom(MIB), offset=0, length=MIB)  # a whole chunk: in the shared store
        blob(sas).upload_page(os.urandom(4096), offset=3 * MIB + 512, length=4096)  # overlay: on the holder
        [(session_id, _)] = session_rows(database_url)
        pages = holder.home / "disk-access" / session_id
        assert pages.is_dir()
        killed(holder, database_url)

        # Not run out yet: the holder may come back with the acknowledged pages, so retry later.
        assert put_page(on(other, sas, holder)).status_code == 503
        before = end_access(other, "lost")
        assert before.status_code == 503 and before.json()["error"]["code"] == "ServiceUnavailable"
        assert int(before.headers["Retry-After"]) > 0
        assert disk_state(other, "lost") == "ActiveUpload" and len(session_rows(database_url)) == 1

        run_out(database_url)
        after = end_access(other, "lost")
        assert after.status_code == 200, after.text
        assert disk_state(other, "lost") == "ReadyToUpload"  # as an expiry on the holder leaves it
        assert session_rows(database_url) == []
        assert not any(download_raw(other.url, "disks", "lost"))  # what was written is not the disk
        refused = put_page(on(other, sas, holder))
        assert refused.status_code == 403 and refused.headers["x-ms-error-code"] == "AuthenticationFailed"

        # The old holder starts again on its home: the session is not brought back, its pages go.
        stores = f"file://{tmp_path}/stores/{{region}}/{{zone}}"  # as two_nodes shares them
        with ThreadServer(holder.home, database_url, store_template=stores) as back:
            assert not pages.exists()
            assert session_rows(database_url) == []
            assert disk_state(back, "lost") == "ReadyToUpload"
            assert not any(download_raw(back.url, "disks", "lost"))
            assert put_page(on(back, sas, holder)).status_code == 403

            # The disk is usable again: a new upload through the surviving node becomes its content.
            via_other = quick_polls(sdk_client(other.url))
            fresh = bytes(SIZE - MIB) + os.urandom(MIB)
            blob(grant(via_other, "lost")).upload_blob(fresh + footer(SIZE), blob_type="PageBlob", overwrite=True)
            revoke(via_other, "lost")
            assert download_raw(back.url, "disks", "lost") == fresh


def test_two_takeovers_at_once_end_a_read_session_once_and_the_content_is_unchanged(tmp_path, database_url):
    with two_nodes(tmp_path, database_url) as (holder, other):
        via_holder = quick_polls(sdk_client(holder.url))
        upload_disk(via_holder, "shown", SIZE)
        content = os.urandom(2 * MIB) + bytes(SIZE - 2 * MIB)
        blob(grant(via_holder, "shown")).upload_blob(content + footer(SIZE), blob_type="PageBlob", overwrite=True)
        revoke(via_holder, "shown")
        read_sas = grant(via_holder, "shown", "Read")
        holder.__exit__(None, None, None)  # stopped, and never started again

        via_other = quick_polls(sdk_client(other.url))
        copy = m.Snapshot(location="eastus", creation_data=m.CreationData(
            create_option="Copy", source_resource_id=resource_id("disks/shown")))
        with pytest.raises(HttpResponseError) as refused:  # an active SAS: not a source
            via_other.snapshots.begin_create_or_update("rg", "copy", copy).result()
        assert refused.value.status_code == 409

        run_out(database_url)
        access = other.app.state.disk_access
        key = resource_id("disks/shown").lower()
        seen = [access.holders.elsewhere(resource_key=key) for _ in range(2)]  # both before either acts
        assert all(e is not None and e.orphaned for e in seen)
        ended: list[bool] = []
        racers = [threading.Thread(target=lambda e=e: ended.append(access.take_over(e))) for e in seen]
        [t.start() for t in racers]
        [t.join() for t in racers]
        assert sorted(ended) == [False, True]  # one state change; the other found the row gone

        assert session_rows(database_url) == []
        assert disk_state(other, "shown") == "Unattached"
        assert download_raw(other.url, "disks", "shown") == content
        with pytest.raises(HttpResponseError) as gone:
            blob(on(other, read_sas, holder)).download_blob(offset=0, length=512).readall()
        assert gone.value.status_code == 403
        via_other.snapshots.begin_create_or_update("rg", "copy", copy).result()
        assert download_raw(other.url, "snapshots", "copy") == content


def test_a_grant_through_another_node_replaces_a_lost_holders_run_out_session(tmp_path):
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    with two_nodes(tmp_path, db) as (holder, other):
        via_holder = quick_polls(sdk_client(holder.url))
        upload_disk(via_holder, "again", SIZE)
        old = grant(via_holder, "again")
        blob(old).upload_page(os.urandom(MIB), offset=0, length=MIB)
        killed(holder, db)
        run_out(db)

        new = grant(quick_polls(sdk_client(other.url)), "again")  # no 503: the old session is ended first
        assert new.startswith(other.url + "/") and new.split("/")[3] != old.split("/")[3]
        assert disk_state(other, "again") == "ActiveUpload"
        [(_, node_id)] = session_rows(db)
        assert node_id == other.app.state.node.id
        assert [(r.start, r.end) for r in blob(new).list_page_ranges()] == []  # nothing of the old pages


def test_a_worker_s_sweep_frees_a_disk_nobody_asks_about(tmp_path, monkeypatch):
    """Attaching, deleting or copying a disk is refused on its diskState alone (409), so a disk
    nobody grants or revokes again is freed by the worker nodes' sweep."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    with two_nodes(tmp_path, db) as (holder, other):
        via_holder = quick_polls(sdk_client(holder.url))
        upload_disk(via_holder, "idle", SIZE)
        blob(grant(via_holder, "idle")).upload_page(os.urandom(MIB), offset=0, length=MIB)
        killed(holder, db)
        access = other.app.state.disk_access
        assert access.sweeping  # other is a worker node (all roles)
        access.stop_sweeping()  # its own sweep (every minute) is not to race the ones called here
        ended = []  # each take-over on this node, whoever asked for it: True if it ended the session
        take_over = access.take_over
        monkeypatch.setattr(access, "take_over", lambda elsewhere: ended.append(take_over(elsewhere)) or ended[-1])

        assert access.sweep_orphans() == 0  # lost, but not run out: its pages may still come back
        assert disk_state(other, "idle") == "ActiveUpload"
        run_out(db)
        access.sweep_orphans()  # this sweep ends it, or one the node had under way when stopped
        assert ended.count(True) == 1, ended  # ended once, by one node's conditional delete
        assert access.sweep_orphans() == 0
        assert disk_state(other, "idle") == "ReadyToUpload" and session_rows(db) == []
        quick_polls(sdk_client(other.url)).disks.begin_delete("rg", "idle").result()
