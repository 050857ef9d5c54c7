"""Each ARM type Galley holds, mapped to the module that carries its rules."""

from __future__ import annotations

from types import SimpleNamespace

from . import (disk, gallery, image_definition, image_template, image_version, managed_image, network,
               storage_account, user_identity, virtual_machine)

KINDS = {
    kind.TYPE: kind
    for kind in (gallery, image_definition, image_version, managed_image, disk.DISK, disk.SNAPSHOT,
                 storage_account, image_template, user_identity, virtual_machine, *network.KINDS)
}

# Types whose children must be deleted first (the seed's galleries → definitions → versions).
PARENT_TYPES = frozenset({gallery.TYPE, image_definition.TYPE})


def kind_of(resource_type: str) -> SimpleNamespace:
    return KINDS[resource_type]
