"""The platform image catalog: images registered through Galley's admin endpoint (and the CLI),
read back through the real azure-mgmt-compute SDK (`virtual_machine_images`), resolved the way
the build pipeline resolves a PlatformImage source, and their disk content read back byte for byte.

Images are a few MiB of random data (platform images have no minimum size). The slow test builds
a real Debian 12 image with `galley platform import debian-12`, using the debootstrap cache in
$GALLEY_TEST_CACHE (default /var/cache/galley-tests).
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

from . import admin_http as httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from galley.domain.platform_images import content_key, resolve

from .conftest import sdk_client
from .data_helpers import MiB, chunk_files, convert, random_raw, store_dir
from .sdk_helpers import assert_arm_error
from .servers import ThreadServer

ADMIN = "/providers/Galley.Platform"
GIB = 1024 ** 3
TEST_CACHE = Path(os.environ.get("GALLEY_TEST_CACHE", "/var/cache/galley-tests"))


def item(publisher: str, offer: str, sku: str, version: str) -> str:
    return f"{ADMIN}/publishers/{publisher}/offers/{offer}/skus/{sku}/versions/{version}"


def register(url: str, image: Path | bytes, *names: str, **params) -> httpx.Response:
    body = image if isinstance(image, bytes) else image.read_bytes()
    return httpx.put(url + item(*names), params=params, content=body, timeout=60)


def register_ok(url: str, image: Path | bytes, *names: str, **params) -> dict:
    response = register(url, image, *names, **params)
    assert response.status_code == 201, response.text
    return response.json()


def catalog(url: str, **filters) -> list[dict]:
    response = httpx.get(url + ADMIN + "/images", params=filters)
    assert response.status_code == 200, response.text
    return response.json()["value"]


def content_bytes(server: ThreadServer, key: str, length: int | None = None) -> bytes:
    """The OS disk stored under `key`, read back through the content engine (its first `length` bytes)."""
    content = server.app.state.content
    found = content.repo.disk_contents(key)
    assert -1 in found, f"no OS disk content under {key}: {found}"
    reader = content.reader(found[-1], content.repo.placements(found[-1]))
    return reader.read(0, reader.virtual_size if length is None else length)


def upload_leases(server: ThreadServer) -> list:
    with server.app.state.store.read() as tx:
        return tx.upload_leases()


@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    return {name: random_raw(folder / f"{name}.raw", size, seed)
            for name, size, seed in (("a", 3 * MiB, 1), ("b", 2 * MiB + 4096, 2), ("c", 5 * MiB, 3))}


# ---- the catalog through the SDK --------------------------------------------------------------

def test_catalog_through_the_sdk(server, images):
    first = register_ok(server.url, images["a"], "Debian", "debian-12", "12", "1.9.0", format="raw")
    assert first == {**first, "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "1.9.0",
                     "urn": "Debian:debian-12:12:1.9.0", "osType": "Linux", "hyperVGeneration": "V1",
                     "architecture": "x64", "virtualSize": 3 * MiB}
    # Names are case-insensitive and keep the catalog's first spelling.
    second = register_ok(server.url, images["b"], "debian", "DEBIAN-12", "12", "1.10.0")
    assert (second["publisher"], second["offer"]) == ("Debian", "debian-12")
    register_ok(server.url, images["c"], "Debian", "debian-12", "12-gen2", "2.0.0", hyperVGeneration="v2")
    register_ok(server.url, images["a"], "Canonical", "ubuntu-24_04-lts", "server", "24.4.1")

    images_api = sdk_client(server.url).virtual_machine_images
    for region in ("eastus", "westus2", "West US 2"):  # every configured region lists the whole catalog
        assert [p.name for p in images_api.list_publishers(region)] == ["Canonical", "Debian"]
    assert [o.name for o in images_api.list_offers("eastus", "debian")] == ["debian-12"]
    skus = images_api.list_skus("eastus", "Debian", "debian-12")
    assert [s.name for s in skus] == ["12", "12-gen2"]
    assert skus[0].location == "eastus"
    assert skus[0].id.endswith("/Locations/eastus/Publishers/Debian/ArtifactTypes/VMImage/Offers/debian-12/Skus/12")

    versions = images_api.list("eastus", "Debian", "debian-12", "12")
    assert [v.name for v in versions] == ["1.9.0", "1.10.0"]  # version order, not string order
    assert [v.name for v in images_api.list("eastus", "Debian", "debian-12", "12", orderby="name desc")] == \
        ["1.10.0", "1.9.0"]
    assert [v.name for v in images_api.list("eastus", "Debian", "debian-12", "12", top=1,
                                            orderby="name desc")] == ["1.10.0"]

    image = images_api.get("westus2", "Debian", "debian-12", "12", "1.10.0")
    assert (image.name, image.location) == ("1.10.0", "westus2")
    assert image.id.endswith("/Skus/12/Versions/1.10.0")
    assert image.os_disk_image.operating_system == "Linux"
    assert (image.hyper_v_generation, image.architecture, image.data_disk_images) == ("V1", "x64", [])
    assert images_api.get("eastus", "Debian", "debian-12", "12-gen2", "2.0.0").hyper_v_generation == "V2"
    assert images_api.get("eastus", "Debian", "debian-12", "12", "latest").name == "1.10.0"


def test_unknown_regions_and_images_are_404(server, images):
    register_ok(server.url, images["a"], "Debian", "debian-12", "12", "1.0.0")
    images_api = sdk_client(server.url).virtual_machine_images
    for call in (lambda: images_api.list_publishers("atlantis"),
                 lambda: images_api.list_offers("eastus", "Nobody"),
                 lambda: images_api.list_skus("eastus", "Debian", "debian-99"),
                 lambda: images_api.list("eastus", "Debian", "debian-12", "13"),
                 lambda: images_api.get("eastus", "Debian", "debian-12", "12", "9.9.9"),
                 lambda: images_api.get("atlantis", "Debian", "debian-12", "12", "1.0.0")):
        with pytest.raises(ResourceNotFoundError) as info:
            call()
        assert info.value.status_code == 404 and info.value.error.message
    base = f"{server.url}/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Compute/locations/eastus"
    versions = f"{base}/publishers/Debian/artifacttypes/vmimage/offers/debian-12/skus/12/versions"
    assert_arm_error(httpx.get(versions, params={"api-version": "2026-04-01", "$orderby": "size"}), 400,
                     "InvalidParameter", mentions="$orderby")
    assert_arm_error(httpx.get(versions, params={"api-version": "1999-01-01"}), 400, "InvalidApiVersionParameter")
    assert_arm_error(httpx.get(versions), 400, "MissingApiVersionParameter")


# ---- what the build pipeline relies on ---------------------------------------------------------

def test_resolve_picks_the_highest_version(server, images):
    for version in ("1.9.0", "1.10.0", "1.2.30"):
        register_ok(server.url, images["b"], "Debian", "debian-12", "12", version)
    with server.app.state.store.read() as tx:
        assert resolve(tx, "Debian", "debian-12", "12", "latest").version == "1.10.0"
        assert resolve(tx, "DEBIAN", "Debian-12", "12", "Latest").version == "1.10.0"
        assert resolve(tx, "Debian", "debian-12", "12", "1.9.0").version == "1.9.0"
        assert resolve(tx, "Debian", "debian-12", "12", "1.9.1") is None
        assert resolve(tx, "Debian", "debian-12", "13", "latest") is None
    assert content_key("Debian", "Debian-12", "12", "1.10.0") == "platform/debian/debian-12/12/1.10.0"


def test_content_reads_back_byte_for_byte(server, images, tmp_path):
    register_ok(server.url, images["a"], "Debian", "debian-12", "12", "1.0.0")
    assert content_bytes(server, content_key("Debian", "debian-12", "12", "1.0.0")) == images["a"].read_bytes()
    if shutil.which("qemu-img") is None:
        return
    # A qcow2 (format detected) or a VHD holds the same disk as the raw file it came from.
    qcow2 = convert(images["c"], tmp_path / "c.qcow2", "qcow2")
    vhd = convert(images["c"], tmp_path / "c.vhd", "vpc", "subformat=fixed", "force_size=on")
    assert register_ok(server.url, qcow2, "Debian", "debian-12", "12", "1.0.1")["virtualSize"] == 5 * MiB
    register_ok(server.url, vhd, "Debian", "debian-12", "12", "1.0.2", format="vhd")
    for version in ("1.0.1", "1.0.2"):
        assert content_bytes(server, content_key("Debian", "debian-12", "12", version)) == images["c"].read_bytes()


# ---- rejections --------------------------------------------------------------------------------

@pytest.mark.parametrize("names, params, code, mentions", [
    (("Bad Publisher!", "o", "s", "1.0.0"), {}, "InvalidParameter", "publisher"),
    (("p", "o" * 65, "s", "1.0.0"), {}, "InvalidParameter", "offer"),
    (("p", "o", "s$", "1.0.0"), {}, "InvalidParameter", "sku"),
    (("p", "o", "s", "1.0"), {}, "InvalidParameter", "version"),
    (("p", "o", "s", "latest"), {}, "InvalidParameter", "version"),
    (("p", "o", "s", "1.0.2147483648"), {}, "InvalidParameter", "version"),
    (("p", "o", "s", "1.0.0"), {"format": "zip"}, "InvalidParameter", "format"),
    (("p", "o", "s", "1.0.0"), {"osType": "Solaris"}, "InvalidParameter", "osType"),
    (("p", "o", "s", "1.0.0"), {"hyperVGeneration": "V3"}, "InvalidParameter", "hyperVGeneration"),
    (("p", "o", "s", "1.0.0"), {"format": "qcow2"}, "InvalidDiskImage", "not usable"),
])
def test_bad_input_is_rejected_and_changes_nothing(module_sqlite_server, images, names, params, code, mentions):
    response = register(module_sqlite_server.url, images["a"], *names, **params)
    assert_arm_error(response, 400, code, mentions=mentions)
    assert catalog(module_sqlite_server.url) == []
    assert module_sqlite_server.app.state.content.repo.contents_with_prefix("platform/") == []
    assert upload_leases(module_sqlite_server) == []


def test_an_empty_body_is_rejected(module_sqlite_server):
    assert_arm_error(register(module_sqlite_server.url, b"", "p", "o", "s", "1.0.0"), 400, "InvalidDiskImage",
                     mentions="empty")
    assert catalog(module_sqlite_server.url) == [] and upload_leases(module_sqlite_server) == []


def test_a_registered_version_is_immutable(server, images):
    register_ok(server.url, images["a"], "Debian", "debian-12", "12", "1.0.0")
    for publisher in ("Debian", "DEBIAN"):
        assert_arm_error(register(server.url, images["b"], publisher, "debian-12", "12", "1.0.0"), 409, "Conflict",
                         mentions="immutable")
    (entry,) = catalog(server.url)
    assert entry["virtualSize"] == 3 * MiB
    assert content_bytes(server, content_key("Debian", "debian-12", "12", "1.0.0")) == images["a"].read_bytes()
    assert upload_leases(server) == []


def test_delete_removes_the_image_and_its_content(server, images, tmp_path):
    register_ok(server.url, images["a"], "Debian", "debian-12", "12", "1.0.0")
    register_ok(server.url, images["b"], "Debian", "debian-12", "12", "1.1.0")
    stores = store_dir(tmp_path, "eastus")
    assert len(chunk_files(stores)) == 3 + 3  # 1 MiB chunks of random data

    deleted = httpx.delete(server.url + item("debian", "debian-12", "12", "1.1.0"))
    assert deleted.status_code == 200 and deleted.json()["urn"] == "Debian:debian-12:12:1.1.0"
    assert_arm_error(httpx.get(server.url + item("Debian", "debian-12", "12", "1.1.0")), 404, "NotFound")
    with pytest.raises(ResourceNotFoundError):
        sdk_client(server.url).virtual_machine_images.get("eastus", "Debian", "debian-12", "12", "1.1.0")
    assert server.app.state.content.repo.disk_contents(content_key("Debian", "debian-12", "12", "1.1.0")) == {}
    assert len(chunk_files(stores)) == 3  # garbage collection freed the deleted image's chunks
    with server.app.state.store.read() as tx:
        assert resolve(tx, "Debian", "debian-12", "12", "latest").version == "1.0.0"
    assert_arm_error(httpx.delete(server.url + item("Debian", "debian-12", "12", "1.1.0")), 404, "NotFound")
    # The version can be registered again once deleted.
    register_ok(server.url, images["c"], "Debian", "debian-12", "12", "1.1.0")


# ---- the CLI -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_import_file_list_show_delete(galley, cli_server, images):
    today = f"0.{datetime.date.today():%Y%m%d}"
    first = galley("platform", "import", "debian-12", "--file", images["a"]).json()
    assert (first["urn"], first["virtualSize"]) == (f"Debian:debian-12:12:{today}.1", 3 * MiB)
    second = galley("platform", "import", "debian-12", "--file", images["b"]).json()
    assert second["version"] == f"{today}.2"
    custom = galley("platform", "import", "debian-12", "--file", images["c"], "--publisher", "Galley",
                    "--offer", "tiny", "--sku", "1", "--version", "3.2.1").json()
    assert custom["urn"] == "Galley:tiny:1:3.2.1"

    listed = galley("platform", "list").json()
    assert [i["urn"] for i in listed] == [f"Debian:debian-12:12:{today}.1", f"Debian:debian-12:12:{today}.2",
                                          "Galley:tiny:1:3.2.1"]
    assert [i["version"] for i in galley("platform", "list", "--publisher", "galley").json()] == ["3.2.1"]
    table = galley("platform", "list", "-o", "table").stdout
    assert "Publisher" in table and "debian-12" in table and "3.2.1" in table

    shown = galley("platform", "show", "--publisher", "Debian", "--offer", "debian-12", "--sku", "12",
                   "--version", "latest").json()
    assert shown["version"] == f"{today}.2"
    assert content_bytes(cli_server, content_key("Debian", "debian-12", "12", shown["version"])) == \
        images["b"].read_bytes()

    again = galley("platform", "import", "debian-12", "--file", images["a"], "--publisher", "Galley",
                   "--offer", "tiny", "--sku", "1", "--version", "3.2.1", check=False)
    assert again.code == 1 and "Conflict" in again.stderr

    assert galley("platform", "delete", "--publisher", "Debian", "--offer", "debian-12", "--sku", "12",
                  "--version", f"{today}.2").stdout == ""
    assert [i["version"] for i in galley("platform", "list", "--sku", "12").json()] == [f"{today}.1"]
    missing = galley("platform", "show", "--publisher", "Debian", "--offer", "debian-12", "--sku", "12",
                     "--version", f"{today}.2", check=False)
    assert missing.code == 1 and "NotFound" in missing.stderr


def test_cli_import_rejects_what_it_cannot_build(galley, cli_server, images):
    wrong = galley("platform", "import", "ubuntu-24.04", "--file", images["a"], check=False)
    assert wrong.code == 2 and "debian-12" in wrong.stderr
    bad = galley("platform", "import", "debian-12", "--file", images["a"], "--version", "1.0", check=False)
    assert bad.code == 2 and "version" in bad.stderr
    bad = galley("platform", "import", "debian-12", "--file", images["a"], "--publisher", "no spaces", check=False)
    assert bad.code == 2 and "publisher" in bad.stderr
    assert galley("platform", "list").json() == []


@pytest.mark.slow
def test_cli_import_builds_a_real_debian_12_image(galley, cli_server):
    missing = [tool for tool in ("debootstrap", "mkfs.ext4", "sfdisk", "grub-mkimage") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"the image builder needs root and {', '.join(missing) or 'its tools'}")
    result = galley("platform", "import", "debian-12", "--cache-dir", TEST_CACHE, "--size-gb", "2", check=False)
    assert result.code == 0, result.stderr
    assert "bootstrap: started" in result.stderr  # the build's progress goes to stderr
    image = result.json()
    assert (image["publisher"], image["offer"], image["sku"]) == ("Debian", "debian-12", "12")
    assert image["virtualSize"] == 2 * GIB and image["sizeInGb"] == 2
    with cli_server.app.state.store.read() as tx:
        assert resolve(tx, "Debian", "debian-12", "12", "latest").version == image["version"]
    got = sdk_client(cli_server.url).virtual_machine_images.get("eastus", "Debian", "debian-12", "12", "latest")
    assert got.name == image["version"] and got.os_disk_image.operating_system == "Linux"
    disk = content_bytes(cli_server, content_key("Debian", "debian-12", "12", image["version"]), 512)
    assert disk[510:] == b"\x55\xaa"  # an MBR: the built disk is what was stored
