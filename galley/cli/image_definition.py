"""`galley sig image-definition …`: gallery image definitions."""

from enum import Enum
from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import API_GALLERY
from galley.cli.common import (
    EndOfLifeOpt, HyperVGeneration, LocationOpt, NoWaitOpt, OsType, ResourceGroupOpt, Session, TagsOpt, arm_command,
    enum_value, given, patch_body, usage_error, with_tags,
)
from galley.cli.kinds import RESOURCE_GROUP, Kind, option
from galley.cli.output import GROUP, LOCATION, NAME, STATE, field
from galley.cli.sig import GALLERY, GalleryOpt, gallery_location

app = typer.Typer(help="Manage gallery image definitions.", no_args_is_help=True)

COLUMNS = (
    NAME, GROUP, LOCATION,
    ("OsType", field("properties.osType")),
    ("OsState", field("properties.osState")),
    ("Publisher", field("properties.identifier.publisher")),
    ("Offer", field("properties.identifier.offer")),
    ("Sku", field("properties.identifier.sku")),
    ("HyperVGeneration", field("properties.hyperVGeneration")),
    STATE,
)


class OsState(str, Enum):
    Generalized = "Generalized"
    Specialized = "Specialized"


DefinitionOpt = Annotated[str, typer.Option("--gallery-image-definition", "-i", help="Image definition name.")]
DescriptionOpt = Annotated[Optional[str], typer.Option("--description", help="Description of the image definition.")]
MinCpuOpt = Annotated[Optional[int], typer.Option("--minimum-cpu-core", help="Recommended minimum vCPUs.")]
MaxCpuOpt = Annotated[Optional[int], typer.Option("--maximum-cpu-core", help="Recommended maximum vCPUs.")]
MinMemoryOpt = Annotated[Optional[int], typer.Option("--minimum-memory", help="Recommended minimum memory (GB).")]
MaxMemoryOpt = Annotated[Optional[int], typer.Option("--maximum-memory", help="Recommended maximum memory (GB).")]

DEFINITION = option("definition", DefinitionOpt)
DEFINITIONS = Kind(app, API_GALLERY, COLUMNS, keys=(RESOURCE_GROUP, GALLERY, DEFINITION), path=paths.image_definition)


def recommended(min_cpu, max_cpu, min_memory, max_memory) -> Optional[dict]:
    """The `recommended` object, holding only the bounds that were given."""
    result: dict = {}
    for key, low, high in (("vCPUs", min_cpu, max_cpu), ("memory", min_memory, max_memory)):
        bounds = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
        if bounds:
            result[key] = bounds
    return result or None


def definition_properties(
    *, publisher, offer, sku, os_type, os_state, hyper_v_generation=None, description=None, eula=None,
    privacy_statement_uri=None, release_note_uri=None, end_of_life_date=None, min_cpu=None, max_cpu=None,
    min_memory=None, max_memory=None, disallowed_disk_types=None, plan_name=None, plan_product=None,
    plan_publisher=None, architecture=None, features=None,
) -> dict:
    """The `properties` of an image definition PUT body."""
    props: dict = {
        "identifier": {"publisher": publisher, "offer": offer, "sku": sku},
        "osType": os_type,
        "osState": os_state,
    }
    props.update(given(
        hyperVGeneration=hyper_v_generation,
        description=description,
        eula=eula,
        privacyStatementUri=privacy_statement_uri,
        releaseNoteUri=release_note_uri,
        endOfLifeDate=end_of_life_date,
        recommended=recommended(min_cpu, max_cpu, min_memory, max_memory),
        disallowed={"diskTypes": disallowed_disk_types} if disallowed_disk_types else None,
        architecture=architecture,
        features=parse_features(features),
    ))
    if plan_name or plan_product or plan_publisher:
        if not (plan_name and plan_product and plan_publisher):
            raise usage_error("--plan-name, --plan-product and --plan-publisher must be given together.")
        props["purchasePlan"] = {"name": plan_name, "product": plan_product, "publisher": plan_publisher}
    return props


def parse_features(values: Optional[list[str]]) -> Optional[list[dict]]:
    """['SecurityType=TrustedLaunch'] -> [{'name': 'SecurityType', 'value': 'TrustedLaunch'}]."""
    if not values:
        return None
    features = []
    for value in values:
        for item in value.split():
            name, sep, feature_value = item.partition("=")
            if not sep or not name:
                raise usage_error(f"--features expects name=value pairs, not {item!r}.")
            features.append({"name": name, "value": feature_value})
    return features


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    definition: DefinitionOpt,
    publisher: Annotated[str, typer.Option("--publisher", help="Publisher name.")],
    offer: Annotated[str, typer.Option("--offer", help="Offer name.")],
    sku: Annotated[str, typer.Option("--sku", help="SKU name.")],
    os_type: Annotated[OsType, typer.Option("--os-type", case_sensitive=False, help="Operating system type.")],
    os_state: Annotated[OsState, typer.Option("--os-state", case_sensitive=False, help="Whether images are generalized or specialized.")] = OsState.Generalized,
    hyper_v_generation: Annotated[Optional[HyperVGeneration], typer.Option("--hyper-v-generation", case_sensitive=False, help="VM generation.")] = None,
    location: LocationOpt = None,
    description: DescriptionOpt = None,
    eula: Annotated[Optional[str], typer.Option("--eula", help="End-user license agreement.")] = None,
    privacy_statement_uri: Annotated[Optional[str], typer.Option("--privacy-statement-uri")] = None,
    release_note_uri: Annotated[Optional[str], typer.Option("--release-note-uri")] = None,
    end_of_life_date: EndOfLifeOpt = None,
    min_cpu: MinCpuOpt = None,
    max_cpu: MaxCpuOpt = None,
    min_memory: MinMemoryOpt = None,
    max_memory: MaxMemoryOpt = None,
    disallowed_disk_types: Annotated[Optional[list[str]], typer.Option("--disallowed-disk-types", help="Disk types the image must not be used with, e.g. Standard_LRS.")] = None,
    plan_name: Annotated[Optional[str], typer.Option("--plan-name", help="Purchase plan name.")] = None,
    plan_product: Annotated[Optional[str], typer.Option("--plan-product", help="Purchase plan product.")] = None,
    plan_publisher: Annotated[Optional[str], typer.Option("--plan-publisher", help="Purchase plan publisher.")] = None,
    architecture: Annotated[Optional[str], typer.Option("--architecture", help="CPU architecture: x64 or Arm64.")] = None,
    features: Annotated[Optional[list[str]], typer.Option("--features", help="Features as name=value, e.g. SecurityType=TrustedLaunch.")] = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create an image definition in a gallery. The location defaults to the gallery's."""
    sub = session.subscription
    location = location or gallery_location(session, resource_group, gallery)
    body = with_tags({
        "location": location,
        "properties": definition_properties(
            publisher=publisher, offer=offer, sku=sku, os_type=os_type.value, os_state=os_state.value,
            hyper_v_generation=enum_value(hyper_v_generation), description=description, eula=eula,
            privacy_statement_uri=privacy_statement_uri, release_note_uri=release_note_uri,
            end_of_life_date=end_of_life_date, min_cpu=min_cpu, max_cpu=max_cpu, min_memory=min_memory,
            max_memory=max_memory, disallowed_disk_types=disallowed_disk_types, plan_name=plan_name,
            plan_product=plan_product, plan_publisher=plan_publisher, architecture=architecture,
            features=features,
        ),
    }, tags)
    path = paths.image_definition(sub, resource_group, gallery, definition)
    return session.client.put(path, API_GALLERY, body, no_wait=no_wait)


DEFINITIONS.add_show("Show an image definition.")
DEFINITIONS.add_list("List the image definitions of a gallery.")


@arm_command(app, "update", COLUMNS)
def update(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    definition: DefinitionOpt,
    description: DescriptionOpt = None,
    end_of_life_date: EndOfLifeOpt = None,
    min_cpu: MinCpuOpt = None,
    max_cpu: MaxCpuOpt = None,
    min_memory: MinMemoryOpt = None,
    max_memory: MaxMemoryOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Update the updatable fields of an image definition (PATCH)."""
    props = given(description=description, endOfLifeDate=end_of_life_date,
                  recommended=recommended(min_cpu, max_cpu, min_memory, max_memory))
    path = paths.image_definition(session.subscription, resource_group, gallery, definition)
    return session.client.patch(path, API_GALLERY, patch_body(props, tags), no_wait=no_wait)


DEFINITIONS.add_delete("Delete an image definition (it must hold no versions).")
