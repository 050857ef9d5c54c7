"""`galley platform …`: the platform image catalog (publisher:offer:sku:version), the images an
image template's PlatformImage source names.

`import debian-12` builds a bootable Debian 12 raw image on this machine (as root) and registers
it; `--file` registers an image you already have (raw, VHD or qcow2) instead of building one."""

import datetime
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import quote

import typer

from galley.cli.client import ArmError, json_body
from galley.cli.common import Session, arm_command, usage_error
from galley.cli.output import field
from galley.cli.transfer import detect_format, local_file_errors, upload_file
from galley.domain.errors import ArmError as DomainError
from galley.domain.platform_images import check_name, check_version, version_order

app = typer.Typer(help="Manage the platform image catalog (publisher:offer:sku:version).", no_args_is_help=True)

ADMIN = "/providers/Galley.Platform"
DISTROS = ("debian-12",)
DEFAULT_CACHE = "~/.cache/galley/debian"

COLUMNS = (
    ("Publisher", field("publisher")), ("Offer", field("offer")), ("Sku", field("sku")),
    ("Version", field("version")), ("OsType", field("osType")), ("HyperVGeneration", field("hyperVGeneration")),
    ("Architecture", field("architecture")), ("SizeGb", field("sizeInGb")),
)

PublisherOpt = Annotated[str, typer.Option("--publisher", "-p", help="Image publisher, e.g. Debian.")]
OfferOpt = Annotated[str, typer.Option("--offer", help="Image offer, e.g. debian-12.")]
SkuOpt = Annotated[str, typer.Option("--sku", "-s", help="Image SKU, e.g. 12.")]
VersionOpt = Annotated[str, typer.Option("--version", help="Image version (x.y.z); show also takes 'latest'.")]


def image_path(publisher: str, offer: str, sku: str, version: str) -> str:
    parts = (("publishers", publisher), ("offers", offer), ("skus", sku), ("versions", version))
    return ADMIN + "".join(f"/{word}/{quote(name, safe='')}" for word, name in parts)


def list_images(session: Session, publisher: Optional[str] = None, offer: Optional[str] = None,
                sku: Optional[str] = None) -> list:
    params = {key: value for key, value in (("publisher", publisher), ("offer", offer), ("sku", sku)) if value}
    return session.client.list(f"{ADMIN}/images", None, params=params)


def next_version(session: Session, publisher: str, offer: str, sku: str, today: datetime.date) -> str:
    """0.YYYYMMDD.N: N is one more than the highest N registered today (1 for the first)."""
    prefix = f"0.{today:%Y%m%d}."
    taken = [version_order(image["version"])[2] for image in list_images(session, publisher, offer, sku)
             if image["version"].startswith(prefix)]
    return f"{prefix}{max(taken, default=0) + 1}"


@arm_command(app, "import", COLUMNS)
def import_image(
    session: Session,
    distro: Annotated[str, typer.Argument(help="What to build: debian-12.", show_default=False)],
    *,
    publisher: Annotated[str, typer.Option("--publisher", "-p", help="Publisher to register it under.")] = "Debian",
    offer: Annotated[str, typer.Option("--offer", help="Offer to register it under.")] = "debian-12",
    sku: Annotated[str, typer.Option("--sku", help="SKU to register it under.")] = "12",
    version: Annotated[Optional[str], typer.Option(
        "--version", help="Version (x.y.z). Default: 0.YYYYMMDD.N, today's date and the next free N.",
        show_default=False)] = None,
    size_gb: Annotated[int, typer.Option("--size-gb", min=1, help="Size of the built disk, in GiB.")] = 2,
    cache_dir: Annotated[Path, typer.Option(
        "--cache-dir", file_okay=False, help="Where downloaded packages and the debootstrap result are kept.")]
    = Path(DEFAULT_CACHE),
    mirror: Annotated[Optional[str], typer.Option("--mirror", help="Debian mirror URL. Default: "
                                                  "$GALLEY_DEBIAN_MIRROR, else deb.debian.org.")] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", exists=True, dir_okay=False, readable=True,
        help="Register this image (raw, VHD or qcow2) instead of building one.")] = None,
):
    """Build a bootable Debian 12 image here (needs root; progress on stderr) and register it in the catalog.

    With --file, register that image instead of building one."""
    if distro.lower() not in DISTROS:
        raise usage_error(f"unknown distribution '{distro}': Galley builds {', '.join(DISTROS)} only "
                          "(or use --file to register an image you have).")
    _check_names(publisher, offer, sku, version)
    version = version or next_version(session, publisher, offer, sku, datetime.date.today())
    if session.client.exists(image_path(publisher, offer, sku, version), None):
        raise ArmError("Conflict", f"platform image {publisher}:{offer}:{sku}:{version} is already registered; "
                       "versions are immutable, choose another --version.")
    if file is not None:
        return _register(session, file, publisher, offer, sku, version)
    with tempfile.TemporaryDirectory(prefix="galley-platform-") as folder:
        built = Path(folder) / "debian-12.raw"
        _build_debian(built, cache_dir.expanduser(), size_gb, mirror, quiet=session.only_show_errors)
        if not session.only_show_errors:
            sys.stderr.write(f"upload: registering {publisher}:{offer}:{sku}:{version}\n")
        return _register(session, built, publisher, offer, sku, version)


def _check_names(publisher: str, offer: str, sku: str, version: Optional[str]) -> None:
    """The server's name rules, checked before a build spends minutes on an image it would refuse."""
    try:
        for value, what in ((publisher, "publisher"), (offer, "offer"), (sku, "sku")):
            check_name(value, what)
        if version is not None:
            check_version(version)
    except DomainError as error:
        raise usage_error(error.message) from None


def _build_debian(out: Path, cache_dir: Path, size_gb: int, mirror: Optional[str], quiet: bool = False) -> None:
    from galley.builder.debian import BuildError, build_debian_image  # the builder, only when building

    def progress(line: str) -> None:
        if quiet:
            return
        sys.stderr.write(f"build: {line}\n")
        sys.stderr.flush()

    try:
        with local_file_errors(cache_dir):
            cache_dir.mkdir(parents=True, exist_ok=True)
        result = build_debian_image(out, cache_dir=cache_dir, size_gib=size_gb, mirror=mirror, progress=progress)
    except BuildError as error:
        raise ArmError("BuildFailed", f"building the Debian 12 image failed at {error}") from None
    progress(f"built {result['virtual_size']} bytes (kernel {result['kernel_version']}, "
             f"{result['packages_count']} packages) in {result['seconds']:.0f} s")


def _register(session: Session, image: Path, publisher: str, offer: str, sku: str, version: str) -> dict:
    with local_file_errors(image):
        fmt = detect_format(image)
    return upload_file(session, image_path(publisher, offer, sku, version), None, image,
                       {"osType": "Linux", "format": fmt}, label=f"{publisher}:{offer}:{sku}:{version}")


@arm_command(app, "list", COLUMNS)
def list_command(
    session: Session,
    *,
    publisher: Annotated[Optional[str], typer.Option("--publisher", "-p", help="Only this publisher.")] = None,
    offer: Annotated[Optional[str], typer.Option("--offer", help="Only this offer.")] = None,
    sku: Annotated[Optional[str], typer.Option("--sku", "-s", help="Only this SKU.")] = None,
):
    """List the catalog's images, oldest version first within each SKU."""
    return list_images(session, publisher, offer, sku)


@arm_command(app, "show", COLUMNS)
def show(session: Session, *, publisher: PublisherOpt, offer: OfferOpt, sku: SkuOpt, version: VersionOpt):
    """Show one image; --version latest shows the highest version."""
    return session.client.get(image_path(publisher, offer, sku, version), None)


@arm_command(app, "delete")
def delete(session: Session, *, publisher: PublisherOpt, offer: OfferOpt, sku: SkuOpt, version: Annotated[str, typer.Option("--version", help="Image version (x.y.z).")]):
    """Delete one image version and its disk content. Builds already made from it keep theirs."""
    json_body(session.client.send("DELETE", image_path(publisher, offer, sku, version)))
    return None
