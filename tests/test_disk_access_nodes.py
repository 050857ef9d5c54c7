"""Disk access sessions on several nodes: a session's pages live on the node that granted it, and
any other node sends the session's blob requests, grants and revokes on to that node, so a client
behind a round-robin balancer never notices which node it reached."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from azure.core.exceptions import HttpResponseError

from . import admin_http as httpx
from .conftest import sdk_client
from .sdk_helpers import DISK_API, compute_url, make_group, quick_polls
from .servers import ThreadServer
from .test_disk_access import MIB, blob, download_raw, footer, grant, revoke, upload_disk

SIZE = 20 * MIB  # the smallest upload disk (Azure: 20 MiB + the VHD footer)


@contextmanager
def two_nodes(tmp_path, database_url: str | None = None) -> Iterator[tuple[ThreadServer, ThreadServer]]:
    """Two running nodes as on separate machines: their own homes, one database (SQLite unless
    `database_url`) and one set of stores; the first one's administrator token works on both, and
    group 'rg' exists."""
    shared = {"database_url": database_url or f"sqlite:///{tmp_path / 'shared.db'}",
              "store_template": f"file://{tmp_path}/stores/{{region}}/{{zone}}"}
    holder = ThreadServer(tmp_path / "a", **shared)
    with holder, ThreadServer(tmp_path / "b", alternate_urls=(holder.url,), **shared) as other:
        httpx.register(other.url, holder.token)
        make_group(holder.url)
        yield holder, other


def on(node: ThreadServer, sas: str, holder: ThreadServer) -> str:
    """The SAS URL as a client reaching `node` would use it."""
    assert sas.startswith(holder.url + "/"), sas
    return node.url + sas[len(holder.url):]


def test_a_write_session_granted_on_one_node_is_served_through_another(tmp_path):
    with two_nodes(tmp_path) as (holder, other):
        via_holder, via_other = quick_polls(sdk_client(holder.url)), quick_polls(sdk_client(other.url))
        upload_disk(via_holder, "shared", SIZE)
        sas = grant(via_holder, "shared")

        # A second grant through the other node is the holder's: the same session comes back.
        again = grant(via_other, "shared")
        assert again.split("?")[0] == on(other, sas, holder).split("?")[0]

        data = bytearray(SIZE)
        data[:MIB] = os.urandom(MIB)
        data[3 * MIB + 512:3 * MIB + 4096] = os.urandom(4096 - 512)  # a partial chunk (overlay)
        image = bytes(data) + footer(SIZE)
        through_other = blob(on(other, sas, holder))
        through_other.upload_blob(image, blob_type="PageBlob", overwrite=True, max_concurrency=4)
        assert [(r.start, r.end) for r in through_other.list_page_ranges()] == [
            (0, MIB - 1), (3 * MIB + 512, 3 * MIB + 4095), (SIZE, SIZE + 511)]
        assert through_other.download_blob(max_concurrency=4).readall() == image

        revoke(via_other, "shared")  # forwarded: the holder folds its pages into the disk
        assert via_holder.disks.get("rg", "shared").disk_state == "Unattached"
        assert download_raw(other.url, "disks", "shared") == bytes(data)
        try:  # the revoked SAS is refused through either node
            through_other.get_blob_properties()
            raise AssertionError("a revoked SAS still answered")
        except HttpResponseError as error:
            assert error.status_code == 403


def test_a_session_whose_node_is_down_is_a_503_to_retry_and_nothing_changes(tmp_path):
    with two_nodes(tmp_path) as (holder, other):
        upload_disk(quick_polls(sdk_client(holder.url)), "held", SIZE)
        sas = grant(quick_polls(sdk_client(holder.url)), "held")
        holder.__exit__(None, None, None)  # the holder stops (its node is marked stopped)

        page = httpx.put(on(other, sas, holder) + "&comp=page",
                         headers={"x-ms-page-write": "update", "x-ms-range": "bytes=0-511",
                                  "x-ms-version": "2021-08-06"}, content=b"\x01" * 512)
        assert page.status_code == 503, page.text
        assert page.headers["x-ms-error-code"] == "ServerBusy" and int(page.headers["Retry-After"]) > 0

        disk = compute_url(other.url, "disks/held")
        ended = httpx.post(f"{disk}/endGetAccess", params={"api-version": DISK_API})
        assert ended.status_code == 503, ended.text
        assert ended.json()["error"]["code"] == "ServiceUnavailable" and "Retry-After" in ended.headers
        state = httpx.get(disk, params={"api-version": DISK_API}).json()["properties"]["diskState"]
        assert state == "ActiveUpload"  # still the holder's session, to finish once it is back
