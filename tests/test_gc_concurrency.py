"""Garbage collection running without pause while uploads, version creations, replications and
deletes go on never removes a chunk that some content still needs.

The hard case is a chunk that becomes garbage (its only version is deleted) at the moment a new
upload or replication wants the very same bytes: the writer must either see the chunk gone and
write it again, or keep it from being collected. Afterwards every live version must download
byte-identical from every region, and `verify` must find nothing damaged or lost.
"""

from __future__ import annotations

import threading
import time

import pytest

from . import admin_http as httpx

from .data_helpers import (MiB, chunk_digests, chunk_files, compute_client, create_upload_disk, create_version,
                           gallery_chain, random_raw, sha256_file, target, upload_ok, version_download_sha,
                           disk_id)
from .sdk_helpers import RG
from .servers import ThreadServer


@pytest.mark.slow
def test_gc_never_removes_chunks_that_writers_need(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with ThreadServer(tmp_path / "home") as running:
        url = running.url
        compute = compute_client(url)
        gallery_chain(compute, url)
        # Two images with the same bytes: what one round deletes, the next round uploads again.
        same = random_raw(images / "same.raw", 24 * MiB, seed=7)
        other = random_raw(images / "other.raw", 24 * MiB, seed=8)
        stop = threading.Event()
        collections = []
        failures = []  # an assert in the thread would only warn, so the test checks these after join

        def collect_all_the_time() -> None:
            try:
                with httpx.Client(timeout=60) as client:
                    while not stop.is_set():
                        response = client.post(f"{url}/galley/store/gc")
                        if response.status_code != 200:
                            failures.append(f"{response.status_code} {response.text}")
                            return
                        collections.append(response.json())
            except Exception as error:  # noqa: BLE001 - reported by the test after join
                failures.append(repr(error))

        collector = threading.Thread(target=collect_all_the_time)
        collector.start()
        try:
            expected = {}
            for round_number in range(4):
                image = same if round_number % 2 == 0 else other
                disk = f"d{round_number}"
                create_upload_disk(compute, disk, 24 * MiB)
                upload_ok(url, disk_id(disk), image)
                version = f"1.0.{round_number}"
                create_version(compute, version, disk, [target("eastus"), target("westus2")])
                expected[version] = sha256_file(image)
                # Free the previous round's version and disk: their chunks become garbage while
                # the next round brings the same bytes back.
                if round_number:
                    previous = f"1.0.{round_number - 1}"
                    compute.gallery_image_versions.begin_delete(RG, "gal", "def", previous).result()
                    compute.disks.begin_delete(RG, f"d{round_number - 1}").result()
                    expected.pop(previous)
            # Two more passes, so one starts after the last delete: what it freed is garbage that
            # nothing brings back (whether a pass caught the earlier rounds' garbage before the next
            # upload wanted the same bytes is a race, and so no proof that the collector works).
            passes = len(collections)
            deadline = time.monotonic() + 120
            while len(collections) < passes + 2 and collector.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            collector.join(timeout=60)
        assert failures == [], f"garbage collection failed alongside the writers: {failures}"
        assert not collector.is_alive(), "the collector did not stop"
        # Each delete also collects once itself, so who freed the garbage is a race; that it is
        # gone is not: the last round's deletes left `same` unused, and no store keeps its chunks.
        assert len(collections) >= passes + 2, "the collector did not run twice after the last delete"
        freed = set(chunk_digests(same))
        for region in ("eastus", "westus2"):
            assert freed.isdisjoint(chunk_files(running.home / "stores" / region)), f"garbage left in {region}"

        for version, digest in expected.items():
            for region in ("eastus", "westus2"):
                assert version_download_sha(url, version, region, images / "out.raw") == digest
        report = httpx.post(f"{url}/galley/store/verify", params={"repair": "false"}, timeout=120).json()
        assert report["checked"] > 0
        assert report["damaged"] == [] and report["lost"] == []
