"""What a run builds from: the template's source resolved now (a platform image's 'latest' is
the newest one at this moment), and its OS disk written out as a raw file for the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...content.formats import write_image
from ...domain import platform_images
from ...domain.ids import key_of
from ..context import JobContext

OS_LUN = -1


class SourceUnavailable(Exception):
    """The source named by the template cannot be used now; the message says what to do."""


@dataclass(frozen=True)
class BuildSource:
    content_id: str
    stores: list[str]
    description: str
    version: str | None  # the platform image's or gallery version's version (for versioning: Source)


def resolve(ctx: JobContext, template) -> BuildSource:
    source = template.properties["source"]
    kind = source["type"]
    if kind == "PlatformImage":
        return _platform_image(ctx, source)
    resource_id = source["imageId"] if kind == "ManagedImage" else source["imageVersionId"]
    with ctx.sql.read() as tx:
        resource = tx.get(resource_id)
    if resource is None:
        raise SourceUnavailable(f"The source '{resource_id}' no longer exists; point the template at an "
                                "existing source and run it again.")
    content_id = ctx.content.repo.disk_contents(key_of(resource_id)).get(OS_LUN)
    if content_id is None:
        raise SourceUnavailable(f"The source '{resource_id}' holds no OS disk content yet "
                                f"(provisioningState {resource.provisioning_state}).")
    if kind == "ManagedImage":
        home = ctx.locations.home_store(resource.location)
        stores = sorted(ctx.content.repo.placements(content_id), key=lambda s: s != home)
        return BuildSource(content_id, stores, f"managed image {resource.id}", None)
    stores = [r["store"] for r in ctx.content.repo.replicas_of(key_of(resource_id))
              if r["region"] == template.location and r["state"] == "Completed"]
    if not stores:
        raise SourceUnavailable(f"The source version '{resource_id}' has no completed replica in "
                                f"{template.location} any more; replicate it there and run again.")
    return BuildSource(content_id, stores, f"gallery image version {resource.id}", resource.name)


def _platform_image(ctx: JobContext, source: dict) -> BuildSource:
    urn = ":".join(source[k] for k in ("publisher", "offer", "sku", "version"))
    with ctx.sql.read() as tx:
        image = platform_images.resolve(tx, source["publisher"], source["offer"], source["sku"], source["version"])
    if image is None:
        raise SourceUnavailable(f"The platform image {urn} is not in Galley's catalog. Import it first "
                                "(galley platform import debian-12) or name one that `galley platform list` "
                                "shows.")
    key = platform_images.content_key(image.publisher, image.offer, image.sku, image.version)
    content_id = ctx.content.repo.disk_contents(key).get(OS_LUN)
    if content_id is None:
        raise SourceUnavailable(f"The platform image {urn} has no content; import it again.")
    return BuildSource(content_id, ctx.content.repo.placements(content_id),
                       f"platform image {image.publisher}:{image.offer}:{image.sku}:{image.version}", image.version)


def export_raw(ctx: JobContext, source: BuildSource, path: Path) -> int:
    """Write the source's OS disk to `path` as a sparse raw file; returns its size."""
    reader = ctx.content.reader(source.content_id, source.stores)
    try:
        write_image(reader, "raw", path)
        return reader.virtual_size
    finally:
        reader.close()
