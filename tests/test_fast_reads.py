"""The fast path for plain GETs answers exactly what the regular route answers, and leaves
everything else (errors, $expand, odd query strings) to the regular routes."""

from __future__ import annotations

from . import admin_http as httpx

from .arm import GALLERY_API, compute_url, seed_definition, put_and_wait, version_body


def test_fast_and_regular_reads_give_the_same_answers(sqlite_server):
    urls = seed_definition(sqlite_server.url)
    version = compute_url(sqlite_server.url, "galleries/gal/images/def/versions/1.0.0")
    put_and_wait(f"{version}?{GALLERY_API}", version_body(urls["snapshot_id"]))
    for url in (urls["gallery"], urls["definition"], version):
        fast = httpx.get(f"{url}?{GALLERY_API}")
        # An extra (ignored) parameter sends the same request down the regular FastAPI route.
        regular = httpx.get(f"{url}?{GALLERY_API}&x=1")
        assert fast.status_code == regular.status_code == 200
        assert fast.json() == regular.json()
        assert fast.headers["content-type"] == regular.headers["content-type"] == "application/json"
    # Mixed-case fixed words are canonicalized before the fast path sees them.
    mixed = version.replace("/providers/Microsoft.Compute/", "/PROVIDERS/microsoft.COMPUTE/")
    assert httpx.get(f"{mixed}?{GALLERY_API}").json()["name"] == "1.0.0"


def test_errors_and_expansions_still_come_from_the_regular_routes(sqlite_server):
    urls = seed_definition(sqlite_server.url)
    missing = httpx.get(f"{urls['gallery']}nope?{GALLERY_API}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    bad_version = httpx.get(f"{urls['gallery']}?api-version=2099-01-01")
    assert bad_version.status_code == 400
    assert bad_version.json()["error"]["code"] == "InvalidApiVersionParameter"
    version = compute_url(sqlite_server.url, "galleries/gal/images/def/versions/1.0.0")
    put_and_wait(f"{version}?{GALLERY_API}", version_body(urls["snapshot_id"]))
    expanded = httpx.get(f"{version}?{GALLERY_API}&$expand=ReplicationStatus").json()
    assert expanded["properties"]["replicationStatus"]["aggregatedState"] == "Completed"
    latest = httpx.get(compute_url(sqlite_server.url, f"galleries/gal/images/def/versions/latest?{GALLERY_API}"))
    assert latest.status_code == 200 and latest.json()["name"] == "1.0.0"
