"""A write whose work finished within the quick-answer budget, when the database goes away just
before its answer re-reads the result: the write is committed, so the answer is ARM's
asynchronous one (201 + Azure-AsyncOperation), never a 503 that would tell the client it was
refused (a full CI run met this once: a 503 for a definition that then existed)."""

from __future__ import annotations

from sqlalchemy import exc

from . import admin_http as httpx
from .sdk_helpers import GALLERY_API, make_group, resource_id
from .servers import ThreadServer


def test_a_committed_quick_write_is_answered_asynchronously_when_its_re_read_meets_an_outage(tmp_path, monkeypatch):
    with ThreadServer(tmp_path) as server:
        make_group(server.url)
        service = server.app.state.service
        real_get = service.get
        failed = []

        def get(resource_id_, *args, **kwargs):
            if resource_id_.endswith("/galleries/g1") and not failed:
                failed.append(resource_id_)
                raise exc.TimeoutError("QueuePool limit reached (a test's outage)")
            return real_get(resource_id_, *args, **kwargs)

        monkeypatch.setattr(service, "get", get)
        gallery = f"{server.url}{resource_id('galleries/g1')}"
        answer = httpx.put(gallery, params={"api-version": GALLERY_API}, json={"location": "eastus"})
        assert failed, "the quick answer never re-read the gallery"
        assert answer.status_code == 201, answer.text
        assert "Azure-AsyncOperation" in answer.headers
        monkeypatch.undo()
        assert httpx.get(gallery, params={"api-version": GALLERY_API}).json()["properties"]["provisioningState"] \
            == "Succeeded"
