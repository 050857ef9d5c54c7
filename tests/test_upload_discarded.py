"""An upload whose half-written content garbage collection dropped while it was still arriving
(it took the upload for abandoned) is refused with a clear 409, and the disk keeps what it had."""

from __future__ import annotations

import os
import time

from . import admin_http as httpx
from .data_helpers import MiB, compute_client, create_upload_disk, disk_id
from .sdk_helpers import DISK_API, assert_arm_error, make_group
from .servers import ThreadServer

SIZE = 8 * MiB


def _put(server: ThreadServer, body) -> httpx.Response:
    return httpx.put(f"{server.url}{disk_id('up')}/upload", params={"api-version": DISK_API, "format": "raw"},
                     content=body, headers={"Content-Length": str(SIZE)}, timeout=60)


def _download(server: ThreadServer) -> bytes:
    response = httpx.get(f"{server.url}{disk_id('up')}/download", params={"api-version": DISK_API, "format": "raw"},
                         timeout=60)
    assert response.status_code == 200, response.text
    return response.content


def test_an_upload_dropped_by_garbage_collection_midway_is_a_409_and_changes_nothing(tmp_path):
    with ThreadServer(tmp_path / "home") as server:
        make_group(server.url)
        create_upload_disk(compute_client(server.url), "up", SIZE)
        first = os.urandom(SIZE)
        assert _put(server, first).status_code == 200
        repo = server.app.state.content.repo

        def body():
            second = os.urandom(SIZE)
            yield second[:4 * MiB]
            # The server makes the content it writes into once it has begun the upload.
            deadline = time.monotonic() + 30
            while not (writing := repo.stale_writing_contents(time.time() + 60)):
                assert time.monotonic() < deadline, "the server never began writing the upload's content"
                time.sleep(0.02)
            # What collect_garbage does to a content it takes for abandoned (engine.collect_garbage).
            for content_id in writing:
                repo.discard_content(content_id)
            yield second[4 * MiB:]

        response = _put(server, body())
        assert_arm_error(response, 409, "UploadDiscarded", mentions="upload the image again")
        assert _download(server) == first
        # Nothing of the dropped upload is left being written.
        assert repo.stale_writing_contents(time.time() + 60) == []
