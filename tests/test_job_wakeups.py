"""Work queued on one node wakes the workers of the others at once (PostgreSQL LISTEN/NOTIFY),
instead of waiting for their next poll."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from galley.jobs.wakeups import Wakeups

from . import admin_http as httpx
from .sdk_helpers import GALLERY_API, compute_url, make_group
from .servers import ThreadServer
from .test_quick_answers import final

A_LONG_POLL = 120.0  # no worker looks for work by itself within the test


@pytest.mark.postgres
def test_a_write_on_an_api_node_wakes_the_worker_of_another_node(tmp_path, postgres):
    database = postgres.create_database("galley_wakeups")
    with ThreadServer(tmp_path / "worker", database, worker_poll_seconds=A_LONG_POLL) as worker_node:
        with ThreadServer(tmp_path / "api", database, run_worker=False, public_url=worker_node.url) as api:
            httpx.register(api.url, worker_node.token)
            make_group(api.url)
            gallery = f"{compute_url(api.url, 'galleries/woken')}?api-version={GALLERY_API}"
            # The api node waits up to 60 s for the worker node to end the operation: well under the
            # worker's poll, so only a wake-up through the database gets it done in time.
            with api.settings_changed(quick_answer_ms=60_000):
                assert final(httpx.put(gallery, json={"location": "eastus"}), 201)["name"] == "woken"
                final(httpx.delete(gallery), 200)
            assert httpx.get(gallery).status_code == 404


def test_on_sqlite_nothing_is_announced_and_no_listener_starts(tmp_path):
    wakeups = Wakeups(create_engine(f"sqlite:///{tmp_path / 'one.db'}"))
    woken = []
    wakeups.announce()
    wakeups.listen(lambda: woken.append(1))
    assert not wakeups.enabled and wakeups._thread is None and woken == []
