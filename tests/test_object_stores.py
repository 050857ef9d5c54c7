"""One contract for every object store: FolderStore on a temp folder, S3Store on a real SeaweedFS.

The S3 half runs against tests/s3server.py's server (started once for this module, 127.0.0.1
only); each test gets a bucket of its own, which the store creates on its first write.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from galley.content.object_store import FolderStore, MissingObject, StoreFull, open_store
from galley.content.s3_store import S3Store

from .s3server import S3Server

MiB = 1024 * 1024
_buckets = itertools.count()


def digest(*parts) -> str:
    """A key shaped like Galley's (a hex hash), so the two-character fan-out is realistic."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@pytest.fixture(scope="module")
def s3_server():
    with S3Server() as server:
        yield server


def new_bucket() -> str:
    return f"galley-test-{os.getpid()}-{next(_buckets)}"


@pytest.fixture(params=["folder", "s3"])
def make_store(request, tmp_path):
    """make_store(name) -> a store; stores of one test share a bucket (S3) or a folder's parent."""
    if request.param == "folder":
        return lambda name="main": FolderStore(tmp_path / name)
    server = request.getfixturevalue("s3_server")
    bucket = new_bucket()
    return lambda name="main": S3Store(bucket=bucket, prefix=f"stores/{name}", endpoint=server.endpoint,
                                       access_key=server.access_key, secret_key=server.secret_key)


@pytest.fixture
def store(make_store):
    return make_store()


# -- the contract, for every store --------------------------------------------------------------


def test_round_trip_of_a_1mib_random_object(store):
    data = os.urandom(MiB)
    key = digest("big")
    store.put(key, data)
    assert store.get(key) == data
    assert store.exists(key)


def test_empty_object_round_trips(store):
    store.put(digest("empty"), b"")
    assert store.get(digest("empty")) == b""
    assert store.exists(digest("empty"))


def test_put_overwrites(store):
    key = digest("overwritten")
    store.put(key, b"first version")
    store.put(key, b"second, longer version")
    assert store.get(key) == b"second, longer version"
    store.put(key, b"3")
    assert store.get(key) == b"3"
    assert list(store.keys()) == [key]


def test_exists_and_idempotent_delete(store):
    key = digest("deleted")
    assert not store.exists(key)
    store.put(key, b"x" * 100)
    assert store.exists(key)
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(MissingObject):
        store.get(key)
    store.delete(key)  # again: no error
    store.delete(digest("never stored"))
    assert list(store.keys()) == []


def test_delete_stray_deletes_only_what_is_still_old_and_unrecorded(store):
    """Garbage collection's last check before deleting an unrecorded object: judged when it
    deletes, not from its earlier listing."""
    import time

    old, fresh, recorded = digest("old stray"), digest("fresh"), digest("recorded since")
    for key in (old, fresh, recorded):
        store.put(key, b"bytes of " + key.encode())
    later = time.time() + 60  # everything above counts as old
    assert store.delete_stray(old, later, lambda: True)
    assert not store.exists(old)
    assert not store.delete_stray(recorded, later, lambda: False)  # a writer recorded it meanwhile
    assert store.get(recorded) == b"bytes of " + recorded.encode()
    assert not store.delete_stray(fresh, time.time() - 60, lambda: True)  # written after the cut-off
    assert store.get(fresh) == b"bytes of " + fresh.encode()
    assert not store.delete_stray(digest("never there"), later, lambda: True)
    assert sorted(store.keys()) == sorted([fresh, recorded])


def test_a_put_whose_temporary_file_a_collection_removes_midway_still_stores(tmp_path, monkeypatch):
    """A collection that took a still-running writer for dead removes its temporary files as a
    dead write's leftovers (old_keys); the write is done again instead of failing (a 500 before)."""
    import time

    from galley.content import object_store

    store = FolderStore(tmp_path / "store")
    key, removed = digest("written while swept"), []
    real_writeback = object_store.start_writeback

    def then_a_sweep(fd: int) -> None:
        real_writeback(fd)
        if not removed:  # between writing the temporary file and renaming it, once
            list(store.old_keys(time.time() + 60))
            removed.extend(p.name for p in (tmp_path / "store").rglob(".incoming-*"))
            assert removed == [], "old_keys left the temporary file in place"
            removed.append("swept")

    monkeypatch.setattr(object_store, "start_writeback", then_a_sweep)
    store.put(key, b"the object")
    assert removed == ["swept"]
    assert store.get(key) == b"the object"
    assert not list((tmp_path / "store").rglob(".incoming-*"))


def test_get_of_a_missing_key_raises_missing_object(store):
    with pytest.raises(MissingObject):
        store.get(digest("nothing here yet"))  # nothing written at all (S3: no bucket yet)
    store.put(digest("something"), b"1")
    with pytest.raises(MissingObject):
        store.get(digest("still not here"))


def test_keys_lists_exactly_what_was_put(store):
    # More than S3's 1000-key page, tiny objects: keys() must follow the continuation tokens.
    wanted = {digest("many", i) for i in range(1100)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put(key, key[:4].encode()), wanted))
    store.put(digest("many", 0), b"overwritten")  # still listed once
    store.delete(digest("many", 1))
    wanted.discard(digest("many", 1))

    listing = list(store.keys())
    assert len(listing) == len(set(listing)) == len(wanted)
    assert set(listing) == wanted


def test_stores_with_different_prefixes_do_not_see_each_other(make_store):
    first, second = make_store("first"), make_store("second")
    shared = digest("in both")
    first.put(shared, b"first's copy")
    second.put(shared, b"second's copy")
    first.put(digest("only first"), b"1")
    second.put(digest("only second"), b"2")

    assert set(first.keys()) == {shared, digest("only first")}
    assert set(second.keys()) == {shared, digest("only second")}
    assert first.get(shared) == b"first's copy"
    assert not first.exists(digest("only second"))
    with pytest.raises(MissingObject):
        second.get(digest("only first"))

    first.delete(shared)
    assert second.get(shared) == b"second's copy"


def test_concurrent_puts_from_four_threads(store):
    start = threading.Barrier(4)
    contended = digest("everyone writes this")
    per_thread = 25

    def work(thread: int) -> dict[str, bytes]:
        written = {}
        start.wait()
        for i in range(per_thread):
            key = digest("thread", thread, i)
            data = os.urandom(64 * 1024 + thread * 1000 + i)
            store.put(key, data)
            written[key] = data
            store.put(contended, f"from thread {thread}".encode())
        return written

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))

    expected = {key: data for written in results for key, data in written.items()}
    assert len(expected) == 4 * per_thread
    for key, data in expected.items():
        assert store.get(key) == data
    assert store.get(contended) in {f"from thread {t}".encode() for t in range(4)}
    assert set(store.keys()) == set(expected) | {contended}


# -- S3 specifics --------------------------------------------------------------------------------


def test_open_store_gives_a_working_s3_store_whose_url_has_no_secret(s3_server, monkeypatch):
    bucket = new_bucket()
    url = (f"s3://{bucket}/eastus/1/r0?endpoint={s3_server.endpoint}&region=us-east-1"
           f"&access_key={quote(s3_server.access_key)}&secret_key={quote(s3_server.secret_key, safe='')}")
    store = open_store(url)
    assert isinstance(store, S3Store)
    assert store.url.startswith(f"s3://{bucket}/eastus/1/r0?")
    assert s3_server.secret_key not in store.url and "secret" not in store.url
    assert s3_server.access_key not in store.url
    assert s3_server.endpoint in store.url
    store.put(digest("via url"), b"hello")
    assert store.get(digest("via url")) == b"hello"

    # Its url opens the same store again once credentials come from the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    again = open_store(store.url)
    assert again.url == store.url
    assert list(again.keys()) == [digest("via url")]
    assert again.get(digest("via url")) == b"hello"


def test_open_store_rejects_an_unknown_option():
    with pytest.raises(ValueError, match="endpont"):
        open_store("s3://bucket/prefix?endpont=http://127.0.0.1:1")


def test_bucket_is_created_on_first_write(s3_server):
    bucket = new_bucket()
    store = S3Store(bucket=bucket, prefix="p", endpoint=s3_server.endpoint,
                    access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    # Before: a missing bucket reads as an empty store.
    assert list(store.keys()) == []
    assert not store.exists(digest("a"))
    store.delete(digest("a"))
    with pytest.raises(MissingObject):
        store.get(digest("a"))
    admin = s3_server.client()
    with pytest.raises(ClientError):
        admin.head_bucket(Bucket=bucket)

    store.put(digest("a"), b"first")
    admin.head_bucket(Bucket=bucket)
    listed = admin.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"p/{digest('a')[:2]}/{digest('a')}"]


@pytest.mark.slow
def test_keys_reads_several_pages(s3_server):
    store = S3Store(bucket=new_bucket(), prefix="paged", endpoint=s3_server.endpoint,
                    access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    wanted = {digest("page", i) for i in range(1001)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put(key, b"."), wanted))
    calls = []
    store._client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(1))
    assert set(store.keys()) == wanted
    assert len(calls) == 2


def test_a_nested_store_is_not_listed_by_its_parent(s3_server):
    def at(prefix):
        return S3Store(bucket=bucket, prefix=prefix, endpoint=s3_server.endpoint,
                       access_key=s3_server.access_key, secret_key=s3_server.secret_key)

    bucket = new_bucket()
    outer, inner, sibling = at("outer"), at("outer/inner"), at("outer2")
    outer.put(digest("outer"), b"o")
    inner.put(digest("inner"), b"i")
    sibling.put(digest("sibling"), b"s")
    assert list(outer.keys()) == [digest("outer")]
    assert list(inner.keys()) == [digest("inner")]
    assert list(sibling.keys()) == [digest("sibling")]


def test_credentials_from_the_environment(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    store = S3Store(bucket=new_bucket(), prefix="env", endpoint=s3_server.endpoint)
    store.put(digest("env"), b"from env")
    assert store.get(digest("env")) == b"from env"


def test_wrong_credentials_are_an_error_not_a_missing_object(s3_server):
    good = S3Store(bucket=new_bucket(), prefix="auth", endpoint=s3_server.endpoint,
                   access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    good.put(digest("guarded"), b"x")
    bad = S3Store(bucket=good.bucket, prefix="auth", endpoint=s3_server.endpoint,
                  access_key=s3_server.access_key, secret_key="not-the-secret")
    with pytest.raises(ClientError):
        bad.get(digest("guarded"))
    with pytest.raises(ClientError):
        bad.exists(digest("guarded"))
    with pytest.raises(ClientError):
        bad.put(digest("other"), b"y")


@pytest.mark.parametrize("code,status", [("XMinioStorageFull", 507), ("QuotaExceeded", 403),
                                         ("XMinioAdminBucketQuotaExceeded", 400),
                                         ("InternalError", 507)])
def test_a_full_server_raises_store_full(code, status):
    store = S3Store(bucket="full-bucket", prefix="p", endpoint="http://127.0.0.1:9",
                    access_key="k", secret_key="s")
    with Stubber(store._writes) as stub:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        with pytest.raises(StoreFull):
            store.put(digest("too much"), b"data")


def test_other_write_errors_are_not_store_full():
    store = S3Store(bucket="some-bucket", prefix="p", endpoint="http://127.0.0.1:9",
                    access_key="k", secret_key="s")
    with Stubber(store._writes) as stub:
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(ClientError) as raised:
            store.put(digest("denied"), b"data")
    assert not isinstance(raised.value, StoreFull)


def test_put_sends_content_md5_and_no_streaming_checksum(s3_server):
    # Content-MD5 is what every S3-compatible server verifies; aws-chunked CRC trailers are not.
    store = S3Store(bucket=new_bucket(), prefix="md5", endpoint=s3_server.endpoint,
                    access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    sent = []
    store._writes.meta.events.register("before-send.s3.PutObject",
                                       lambda request, **kw: sent.append(dict(request.headers)))
    data = os.urandom(4096)
    store.put(digest("md5"), data)
    headers = {name.lower(): value.decode() if isinstance(value, bytes) else value
               for name, value in sent[-1].items()}
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert store.get(digest("md5")) == data
