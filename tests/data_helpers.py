"""Helpers for the data-plane tests: random disk images made on the fly, uploads and downloads over
HTTP, the ARM parts through the real azure-mgmt-compute SDK, and a look into the chunk stores."""

from __future__ import annotations

import hashlib
import random
import subprocess
import time
from pathlib import Path

import blake3
from . import admin_http as httpx
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from .sdk_helpers import (GALLERY_API, RG, create_definition, create_gallery, make_group, quick_polls,
                          resource_id)
from .conftest import sdk_client
from .servers import SUBSCRIPTION

MiB = 1024 * 1024
DISK_API = "2026-03-02"
UPLOAD_MINIMUM = 20 * MiB  # Azure's (and Galley's) smallest uploadSizeBytes is 20 MiB + 512


# ---- images --------------------------------------------------------------------------------------

def random_raw(path: Path, size: int, seed: int, pieces: list[tuple[int, int]] | None = None) -> Path:
    """A raw image of `size` bytes: random data everywhere, or only at the (offset, length) pieces
    (the rest a hole of zeros). Random data, so compression cannot hide anything."""
    rng = random.Random(seed)
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, length in pieces if pieces is not None else [(0, size)]:
            handle.seek(offset)
            handle.write(rng.randbytes(length))
    return path


def changed_copy(source: Path, target: Path, changes: list[tuple[int, int]], seed: int) -> Path:
    """`source` with new random bytes at each (offset, length)."""
    rng = random.Random(seed)
    data = bytearray(source.read_bytes())
    for offset, length in changes:
        data[offset:offset + length] = rng.randbytes(length)
    target.write_bytes(bytes(data))
    return target


def convert(raw: Path, target: Path, fmt: str, *options: str) -> Path:
    """qemu-img convert a raw image (input format always given)."""
    command = ["qemu-img", "convert", "-f", "raw", "-O", fmt, *[x for o in options for x in ("-o", o)],
               str(raw), str(target)]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return target


def qemu_compare(raw: Path, other: Path, other_format: str) -> None:
    run = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", other_format, str(raw), str(other)],
                         capture_output=True, text=True)
    assert run.returncode == 0, f"qemu-img compare: {run.stdout} {run.stderr}"


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunk_digests(raw: Path) -> list[str]:
    """The BLAKE3 names of the image's non-zero 1 MiB chunks, in order (the chunk store's file names)."""
    found = []
    with open(raw, "rb") as handle:
        while piece := handle.read(MiB):
            if any(piece):
                found.append(blake3.blake3(piece).hexdigest())
    return found


# ---- the chunk stores on disk --------------------------------------------------------------------

def store_dir(home: Path, region: str, zone: str = "1", slot: int = 0) -> Path:
    return home / "stores" / region / zone / f"r{slot}"


def chunk_files(folder: Path) -> dict[str, Path]:
    """Chunk files (name → path) under a store folder (or a region's folder: every store in it)."""
    if not folder.exists():
        return {}
    return {p.name: p for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".incoming-")}


def stored_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in chunk_files(folder).values())


def slot_folders_with_chunks(home: Path, region: str) -> set[str]:
    """'zone/rN' of every store folder of the region that holds at least one chunk file."""
    base = home / "stores" / region
    if not base.exists():
        return set()
    return {f"{zone.name}/{slot.name}" for zone in base.iterdir() if zone.is_dir()
            for slot in zone.iterdir() if slot.is_dir() and chunk_files(slot)}


# ---- ARM through the SDK -------------------------------------------------------------------------

def compute_client(url: str) -> ComputeManagementClient:
    return quick_polls(sdk_client(url), longest=0.1)


def gallery_chain(compute: ComputeManagementClient, url: str) -> None:
    """Resource group 'rg', gallery 'gal', definition 'def' (Linux, generalized), all in eastus."""
    make_group(url)
    create_gallery(compute)
    create_definition(compute)


def create_upload_disk(compute: ComputeManagementClient, name: str, size: int,
                       location: str = "eastus") -> m.Disk:
    upload_bytes = max(size, UPLOAD_MINIMUM) + 512
    disk = m.Disk(location=location, os_type="Linux",
                  creation_data=m.CreationData(create_option="Upload", upload_size_bytes=upload_bytes))
    return compute.disks.begin_create_or_update(RG, name, disk).result()


def disk_id(name: str) -> str:
    return resource_id(f"disks/{name}")


def version_id(name: str, definition: str = "def") -> str:
    return resource_id(f"galleries/gal/images/{definition}/versions/{name}")


def target(region: str, count: int = 1, storage: str = "Standard_LRS") -> m.TargetRegion:
    return m.TargetRegion(name=region, regional_replica_count=count, storage_account_type=storage)


def version_model(source_disk: str, targets: list[m.TargetRegion], location: str = "eastus") -> m.GalleryImageVersion:
    return m.GalleryImageVersion(
        location=location,
        publishing_profile=m.GalleryImageVersionPublishingProfile(target_regions=targets),
        storage_profile=m.GalleryImageVersionStorageProfile(
            os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(id=disk_id(source_disk)))))


def begin_version(compute: ComputeManagementClient, name: str, source_disk: str,
                  targets: list[m.TargetRegion], definition: str = "def"):
    return compute.gallery_image_versions.begin_create_or_update(
        RG, "gal", definition, name, version_model(source_disk, targets))


def create_version(compute: ComputeManagementClient, name: str, source_disk: str,
                   targets: list[m.TargetRegion], definition: str = "def") -> m.GalleryImageVersion:
    return begin_version(compute, name, source_disk, targets, definition).result()


# ---- raw HTTP for content ------------------------------------------------------------------------

def upload(url: str, resource: str, image: Path, fmt: str | None = None,
           client: httpx.Client | None = None) -> httpx.Response:
    params = {"api-version": DISK_API}
    if fmt is not None:
        params["format"] = fmt
    with open(image, "rb") as handle:
        return (client or httpx).put(f"{url}{resource}/upload", params=params, content=handle,
                                     timeout=120)


def upload_ok(url: str, resource: str, image: Path, fmt: str | None = None) -> dict:
    response = upload(url, resource, image, fmt)
    assert response.status_code == 200, response.text
    return response.json()


def download(url: str, resource: str, target_file: Path, fmt: str = "raw", region: str | None = None,
             lun: int | None = None, api: str = DISK_API, headers: dict | None = None) -> httpx.Response:
    """Stream a download into target_file; returns the response (body already consumed)."""
    params = {"api-version": api, "format": fmt}
    if region is not None:
        params["region"] = region
    if lun is not None:
        params["lun"] = str(lun)
    with httpx.stream("GET", f"{url}{resource}/download", params=params, headers=headers or {},
                      timeout=120) as response:
        with open(target_file, "wb") as handle:
            for piece in response.iter_bytes():
                handle.write(piece)
    return response


def download_sha(url: str, resource: str, tmp: Path, **options) -> str:
    response = download(url, resource, tmp, **options)
    assert response.status_code == 200, tmp.read_text(errors="replace")[:2000]
    return sha256_file(tmp)


def version_download_sha(url: str, version: str, region: str, tmp: Path) -> str:
    return download_sha(url, version_id(version), tmp, region=region, api=GALLERY_API)


def get_version(url: str, name: str, definition: str = "def") -> dict:
    response = httpx.get(f"{url}{version_id(name, definition)}",
                         params={"api-version": GALLERY_API, "$expand": "ReplicationStatus"})
    assert response.status_code == 200, response.text
    return response.json()


def region_status(url: str, name: str) -> dict[str, dict]:
    summary = get_version(url, name)["properties"]["replicationStatus"]["summary"]
    return {row["region"]: row for row in summary}


def wait_version(url: str, name: str, timeout: float = 60.0,
                 states: tuple[str, ...] = ("Succeeded", "Failed")) -> dict:
    deadline = time.time() + timeout
    while True:
        body = get_version(url, name)
        if body["properties"]["provisioningState"] in states:
            return body
        assert time.time() < deadline, f"version {name} still {body['properties']}"
        time.sleep(0.1)


def latest_in(url: str, region: str, definition: str = "def") -> httpx.Response:
    return httpx.get(f"{url}{resource_id(f'galleries/gal/images/{definition}/versions/latest')}",
                     params={"api-version": GALLERY_API, "region": region})


def usage(url: str) -> dict:
    response = httpx.get(f"{url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/galleyUsage",
                         params={"api-version": GALLERY_API})
    assert response.status_code == 200, response.text
    return response.json()


def physical_bytes(url: str, region: str) -> int:
    return next((r["physicalBytes"] for r in usage(url)["regions"] if r["region"] == region), 0)


def egress_to(url: str, region: str) -> int:
    return sum(e["bytes"] for e in usage(url)["egress"] if e["to"] == region)


def collect_garbage(url: str) -> dict:
    response = httpx.post(f"{url}/galley/store/gc")
    assert response.status_code == 200, response.text
    return response.json()


def wait_operation_of(response_headers, timeout: float = 60.0) -> dict:
    """Follow the headers' Azure-AsyncOperation until the operation ends (see arm.wait_operation
    for a response that may be final)."""
    location = response_headers["Azure-AsyncOperation"]
    deadline = time.time() + timeout
    while True:
        status = httpx.get(location).json()
        if status["status"] not in ("InProgress", "Accepted", "Running"):
            return status
        assert time.time() < deadline, f"operation still running: {status}"
        time.sleep(0.1)
