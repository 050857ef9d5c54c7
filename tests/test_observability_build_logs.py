"""Build logs in the object store (jobs/build/log_segments.py) do not outlive their template: a
template's delete deletes its log's segments, and `galley store gc` sweeps segments whose template
no longer exists (left when the delete could not reach the store)."""

from __future__ import annotations


from galley.jobs.build import log_segments

from . import admin_http as httpx
from .servers import ThreadServer
from .test_image_templates import API, Chain, body_with, put_template, run_to_its_end as _run_to_its_end, \
    template_id, template_url, wait_template


def test_a_deleted_template_takes_its_build_log_with_it_and_gc_sweeps_leftovers(tmp_path, monkeypatch):
    monkeypatch.setattr(log_segments, "SEGMENT_BYTES", 64)  # a log of several segments
    stores = f"file://{tmp_path / 'stores'}/{{region}}/{{zone}}"
    with ThreadServer(tmp_path / "home", store_template=stores) as server:
        chain = Chain(server.url)
        for name in ("t1", "t2"):
            # Its identity holds no role on the source: each run fails at once, after writing its log.
            assert put_template(server.url, name, body_with(chain)).status_code == 201
            wait_template(server.url, name, timeout=30)
            _run_to_its_end(server.url, name)
        store = log_segments.store_of(server.app.state.content.locations, "eastus")
        logged = {name: log_segments.read(store, template_id(name), 0, 1 << 20) for name in ("t1", "t2")}
        assert all(log is not None and log[1] > 2 * 64 for log in logged.values()), logged
        # What a delete that could not reach the store leaves: the log of a template that is gone.
        store.put(log_segments.segment_key(template_id("gone"), 0), b"an old run's last lines")

        with server.settings_changed(quick_answer_ms=10_000):  # answered once the delete has ended
            deleted = httpx.delete(template_url(server.url, "t1"), params={"api-version": API})
        assert deleted.status_code == 204, deleted.text
        assert log_segments.read(store, template_id("t1"), 0, 1 << 20) is None
        assert not any(key.startswith(log_segments.segment_key(template_id("t1"), 0)[:41])
                       for key in store.keys())  # every segment, not only the first
        assert log_segments.read(store, template_id("t2"), 0, 1 << 20) == logged["t2"]
        assert log_segments.read(store, template_id("gone"), 0, 100) is not None

        swept = httpx.post(f"{server.url}/galley/store/gc")
        assert swept.status_code == 200, swept.text
        assert swept.json()["log_segments_deleted"] == 1
        assert log_segments.read(store, template_id("gone"), 0, 100) is None
        assert log_segments.read(store, template_id("t2"), 0, 1 << 20) == logged["t2"]  # its template lives
        assert httpx.get(f"{template_url(server.url, 't2')}/logs", params={"api-version": API}).content == \
            logged["t2"][0]
