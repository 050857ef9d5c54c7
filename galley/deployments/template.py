"""A deployment template made ready to run: parameters bound and checked, variables on demand,
resources expanded (`condition`, `copy` loops, nested child resources) with their ARM ids, and
ordered by `dependsOn` into waves that may run side by side.

Everything that can be known before anything is deployed is checked here, so that a wrong
template is a 400 InvalidTemplate that changes nothing: its shape, the parameters, the functions
it calls, each resource's type (one Galley serves), name and dependencies. Resource bodies are
evaluated later, just before each resource is applied, because they may `reference()` resources
deployed earlier in the same run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .expressions import (
    Scope,
    TemplateError,
    evaluate,
    is_expression,
    unknown_functions,
)

DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"
MAX_COPY = 800  # ARM's limit on a copy loop's count
MAX_RESOURCES = 800  # ARM's limit on the resources of one deployment
MAX_VARIABLE_CHAIN = 32  # variables evaluated within variables
# Keys of a template resource that steer the deployment rather than form the request body.
_CONTROL_KEYS = frozenset({"type", "name", "apiVersion", "dependsOn", "copy", "condition", "comments",
                           "resources", "metadata", "scope"})
_PARAMETER_TYPES = {"string": str, "securestring": str, "int": int, "bool": bool, "object": dict,
                    "secureobject": dict, "array": list}


@dataclass
class PlannedResource:
    """One resource (one copy of a loop) the deployment applies."""

    id: str
    type: str
    name: str
    api_version: str
    source: dict  # the template's resource, for its body
    copy_name: str | None = None
    copy_index: int | None = None
    depends_on: set[str] = field(default_factory=set)  # ids (lower-case)

    @property
    def key(self) -> str:
        return self.id.lower()


@dataclass
class Context:
    """Where the deployment runs: its subscription, resource group and name."""

    subscription_id: str
    resource_group: str
    location: str
    deployment_name: str
    tenant_id: str | None = None
    resource_group_tags: dict = field(default_factory=dict)
    # reads a resource (by id, with an api-version or None) through Galley's API: set by the runner
    read: Callable[[str, str | None], Awaitable[dict]] | None = None


class Template:
    def __init__(self, template: object, parameters: object, context: Context,
                 known_types: frozenset[str]) -> None:
        if not isinstance(template, dict):
            raise TemplateError("properties.template must be a JSON object (templateLink is not supported: "
                                "send the template itself).", target="properties.template")
        self.raw = template
        self.context = context
        self._known_types = {t.lower(): t for t in known_types}
        self.parameter_specs = _object(template.get("parameters"), "parameters")
        self.variable_specs = _object(template.get("variables"), "variables")
        self.outputs = _object(template.get("outputs"), "outputs")
        self.supplied = _supplied(parameters)
        self.parameter_values: dict[str, Any] = {}
        self._variables: dict[str, Any] = {}
        self._evaluating: list[str] = []
        self.secure_parameters = {name.lower() for name, spec in self.parameter_specs.items()
                                  if isinstance(spec, dict) and str(spec.get("type", "")).lower()
                                  in ("securestring", "secureobject")}
        if template.get("languageVersion") is not None:
            raise TemplateError(f"Template languageVersion '{template['languageVersion']}' (symbolic resource "
                                "names) is not supported; use the classic form with a resources array.")
        unknown = unknown_functions({k: v for k, v in template.items() if k != "$schema"})
        if unknown:
            raise TemplateError(f"The template calls functions Galley does not evaluate: {', '.join(sorted(unknown))}.")

    # ---- parameters and variables ----------------------------------------------------------

    async def bind_parameters(self) -> None:
        specs = {name.lower(): (name, spec) for name, spec in self.parameter_specs.items()}
        extra = [name for name in self.supplied if name.lower() not in specs]
        if extra:
            raise TemplateError(f"The template parameters '{', '.join(extra)}' are not valid; they are not "
                                "present in the original template and can therefore not be provided at deployment "
                                "time. The only supported parameters for this template are "
                                f"'{', '.join(self.parameter_specs)}'.", code="InvalidTemplate")
        supplied = {name.lower(): value for name, value in self.supplied.items()}
        for key, (name, spec) in specs.items():
            if not isinstance(spec, dict):
                raise TemplateError(f"Template parameter '{name}' must be an object with a type.")
            kind = str(spec.get("type", "")).lower()
            if kind not in _PARAMETER_TYPES:
                raise TemplateError(f"Template parameter '{name}' has type '{spec.get('type')}'; the types are "
                                    "string, securestring, int, bool, object, secureObject and array.")
            if key in supplied:
                value = supplied[key]
            elif "defaultValue" in spec:
                value = await evaluate(spec["defaultValue"], self._scope())
            else:
                raise TemplateError(f"Deployment template validation failed: 'The value for the template parameter "
                                    f"'{name}' is not provided. Please see https://aka.ms/arm-create-parameter-file "
                                    "for usage details.'.", code="InvalidTemplate")
            expected = _PARAMETER_TYPES[kind]
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise TemplateError(f"Template parameter '{name}' must be of type {spec['type']}; the value given is "
                                    f"not.", code="InvalidTemplate")
            allowed = spec.get("allowedValues")
            if isinstance(allowed, list) and value not in allowed:
                shown = "(hidden)" if key in self.secure_parameters else repr(value)
                raise TemplateError(f"The provided value {shown} for the template parameter '{name}' is not valid. "
                                    f"The parameter value is not part of the allowed value(s): "
                                    f"'{', '.join(map(str, allowed))}'.")
            self.parameter_values[key] = value

    def parameter(self, name: str) -> Any:
        if not isinstance(name, str) or name.lower() not in self.parameter_values:
            raise TemplateError(f"The template parameter '{name}' is not found. Please see "
                                "https://aka.ms/arm-syntax-parameters for usage details.")
        return self.parameter_values[name.lower()]

    async def variable(self, name: str) -> Any:
        specs = {k.lower(): v for k, v in self.variable_specs.items()}
        key = name.lower() if isinstance(name, str) else None
        if key not in specs:
            raise TemplateError(f"The template variable '{name}' is not found. Please see "
                                "https://aka.ms/arm-syntax-variables for usage details.")
        if key not in self._variables:
            if key in self._evaluating:
                raise TemplateError(f"The template variable '{name}' refers to itself: "
                                    f"{' -> '.join(self._evaluating + [key])}.")
            if key == "copy":
                raise TemplateError("Variable copy loops are not supported by Galley.")
            if len(self._evaluating) >= MAX_VARIABLE_CHAIN:
                raise TemplateError(f"Variable '{name}' is reached through more than {MAX_VARIABLE_CHAIN} other "
                                    "variables.")
            self._evaluating.append(key)
            try:
                self._variables[key] = await evaluate(specs[key], self._scope())
            finally:
                self._evaluating.pop()
        return self._variables[key]

    # ---- resources -------------------------------------------------------------------------

    async def plan(self) -> list[PlannedResource]:
        """Every resource to apply (conditions false left out), dependencies resolved to ids."""
        raw = self.raw.get("resources", [])
        if not isinstance(raw, list):
            raise TemplateError("The template's 'resources' must be an array.")
        declared: list[tuple[dict, str]] = []
        for i, resource in enumerate(raw):
            declared.extend(self._flatten(resource, f"resources[{i}]", None))
        planned: list[PlannedResource] = []
        copies: dict[str, list[str]] = {}
        for resource, where in declared:
            loop = resource.get("copy")
            if loop is None:
                item = await self._place(resource, where, None, None)
                if item is not None:
                    planned.append(item)
                continue
            if not isinstance(loop, dict) or not isinstance(loop.get("name"), str):
                raise TemplateError(f"'{where}.copy' must be an object with a name and a count.")
            count = await evaluate(loop.get("count"), self._scope())
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COPY:
                raise TemplateError(f"'{where}.copy.count' must be an integer from 0 to {MAX_COPY}; got {count!r}.")
            members = copies.setdefault(loop["name"].lower(), [])
            for index in range(count):
                item = await self._place(resource, where, loop["name"], index)
                if item is not None:
                    planned.append(item)
                    members.append(item.key)
            if len(planned) > MAX_RESOURCES:
                break
        if len(planned) > MAX_RESOURCES:
            raise TemplateError(f"The template deploys more than {MAX_RESOURCES} resources, ARM's limit.")
        seen: set[str] = set()
        for item in planned:
            if item.key in seen:
                raise TemplateError(f"The resource '{item.id}' is defined multiple times in the template.")
            seen.add(item.key)
        await self._resolve_dependencies(planned, copies)
        return planned

    def _flatten(self, resource: object, where: str, parent: tuple[str, str] | None) -> list[tuple[dict, str]]:
        """A resource and its nested child resources, children given their full type and name."""
        if not isinstance(resource, dict):
            raise TemplateError(f"'{where}' must be a JSON object.")
        for key in ("type", "name", "apiVersion"):
            if not isinstance(resource.get(key), str) or not resource[key]:
                raise TemplateError(f"'{where}.{key}' is required (a string).", target=f"{where}.{key}")
        resource = dict(resource)
        if parent is not None:
            if "/" not in resource["type"]:
                resource["type"] = f"{parent[0]}/{resource['type']}"
            resource["name"] = _joined(parent[1], resource["name"])
            resource["dependsOn"] = [*(resource.get("dependsOn") or []), _joined(parent[0], parent[1])]
        found = [(resource, where)]
        children = resource.get("resources") or []
        if not isinstance(children, list):
            raise TemplateError(f"'{where}.resources' must be an array.")
        for i, child in enumerate(children):
            found.extend(self._flatten(child, f"{where}.resources[{i}]", (resource["type"], resource["name"])))
        return found

    async def _place(self, resource: dict, where: str, copy_name: str | None,
                     copy_index: int | None) -> PlannedResource | None:
        scope = self._scope(copy_name, copy_index)
        if "condition" in resource:
            condition = await evaluate(resource["condition"], scope)
            if not isinstance(condition, bool):
                raise TemplateError(f"'{where}.condition' must be a boolean.")
            if not condition:
                return None
        resource_type = self._known_types.get(resource["type"].lower())
        if resource_type is None:
            raise TemplateError(
                f"The resource type '{resource['type']}' at '{where}' is not one Galley deploys. Types it can deploy: "
                f"{', '.join(sorted(self._known_types.values()))}.", code="NoRegisteredProviderFound",
                target=f"{where}.type")
        name = await evaluate(resource["name"], scope)
        if not isinstance(name, str) or not name:
            raise TemplateError(f"'{where}.name' must evaluate to a string.")
        resource_id = self.resource_id_of(resource_type, name.split("/"), where)
        return PlannedResource(id=resource_id, type=resource_type, name=name, api_version=resource["apiVersion"],
                               source=resource, copy_name=copy_name, copy_index=copy_index)

    def resource_id_of(self, resource_type: str, names: list[str], where: str = "") -> str:
        namespace, *segments = resource_type.split("/")
        if len(names) != len(segments) or not all(names):
            raise TemplateError(f"The resource name '{'/'.join(names)}' {('at ' + where) if where else ''} does not fit "
                                f"type '{resource_type}': it needs {len(segments)} segment(s) separated by '/'.")
        tail = "/".join(f"{s}/{n}" for s, n in zip(segments, names))
        return (f"/subscriptions/{self.context.subscription_id}/resourceGroups/{self.context.resource_group}"
                f"/providers/{namespace}/{tail}")

    async def _resolve_dependencies(self, planned: list[PlannedResource], copies: dict[str, list[str]]) -> None:
        by_id = {p.key: p for p in planned}
        by_type_name = {f"{p.type}/{p.name}".lower(): p.key for p in planned}
        by_name: dict[str, list[str]] = {}
        for p in planned:
            by_name.setdefault(p.name.lower(), []).append(p.key)
        declared_names = {str(r.get("name")).lower() for r in self.raw.get("resources", []) if isinstance(r, dict)}
        for item in planned:
            depends = item.source.get("dependsOn") or []
            if not isinstance(depends, list):
                raise TemplateError(f"'dependsOn' of '{item.name}' must be an array.")
            for entry in depends:
                value = await evaluate(entry, self._scope(item.copy_name, item.copy_index))
                if not isinstance(value, str):
                    raise TemplateError(f"A 'dependsOn' entry of '{item.name}' is not a string.")
                text = value.lower()
                if text in copies:
                    targets = copies[text]
                elif text in by_id:
                    targets = [text]
                elif text in by_type_name:
                    targets = [by_type_name[text]]
                elif "/providers/" in text and text.split("/providers/", 1)[1] in by_type_name:
                    targets = [by_type_name[text.split("/providers/", 1)[1]]]
                elif len(by_name.get(text, [])) == 1:
                    targets = by_name[text]
                elif text in declared_names or any(text.endswith("/" + n) for n in declared_names):
                    targets = []  # a resource left out by its condition: nothing to wait for
                else:
                    raise TemplateError(f"The resource '{value}' is not defined in the template (a dependsOn "
                                        f"of '{item.name}').")
                item.depends_on.update(t for t in targets if t != item.key)

    # ---- evaluation ------------------------------------------------------------------------

    def _scope(self, copy_name: str | None = None, copy_index: int | None = None) -> Scope:
        scope = Scope()
        template = self
        context = self.context
        scope.parameters = self.parameter
        scope.variables = self.variable

        def copy_index_of(loop: str | None) -> int:
            if copy_index is None or (loop is not None and copy_name is not None and loop.lower() != copy_name.lower()):
                raise TemplateError("copyIndex() is used outside a copy loop" +
                                    (f" named '{loop}'" if loop else "") + ".")
            return copy_index

        scope.copy_index = copy_index_of
        group_id = f"/subscriptions/{context.subscription_id}/resourceGroups/{context.resource_group}"
        scope.resource_group = {"id": group_id, "name": context.resource_group,
                                "type": "Microsoft.Resources/resourceGroups", "location": context.location,
                                "tags": context.resource_group_tags,
                                "properties": {"provisioningState": "Succeeded"}}
        scope.subscription = {"id": f"/subscriptions/{context.subscription_id}",
                              "subscriptionId": context.subscription_id, "tenantId": context.tenant_id,
                              "displayName": context.subscription_id}
        scope.deployment = {"name": context.deployment_name,
                            "properties": {"templateLink": None, "mode": "Incremental"}}

        def resource_id(args: list) -> str:
            if not all(isinstance(a, str) for a in args):
                raise TemplateError("resourceId() takes strings.")
            position = next((i for i, a in enumerate(args) if "/" in a and "." in a.split("/")[0]), None)
            if position is None or position > 2:
                raise TemplateError(f"resourceId({', '.join(args)}) names no resource type such as "
                                    "'Microsoft.Network/virtualNetworks'.")
            subscription, group = context.subscription_id, context.resource_group
            if position == 1:
                group = args[0]
            elif position == 2:
                subscription, group = args[0], args[1]
            resource_type, names = args[position], args[position + 1:]
            namespace, *segments = resource_type.split("/")
            if len(names) != len(segments):
                raise TemplateError(f"resourceId() for type '{resource_type}' needs {len(segments)} name(s); "
                                    f"got {len(names)}.")
            tail = "/".join(f"{s}/{n}" for s, n in zip(segments, names))
            return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{namespace}/{tail}"

        def subscription_resource_id(args: list) -> str:
            resource_type, names = args[0], args[1:]
            namespace, *segments = resource_type.split("/")
            tail = "/".join(f"{s}/{n}" for s, n in zip(segments, names))
            return f"/subscriptions/{context.subscription_id}/providers/{namespace}/{tail}"

        async def reference(target: str, api_version: str | None, full: bool) -> Any:
            if not isinstance(target, str):
                raise TemplateError("reference() takes a resource id or name.")
            resource_id = target if target.startswith("/") else template._id_of_declared(target)
            if context.read is None:
                raise TemplateError("reference() cannot be evaluated while the template is only checked.")
            found = await context.read(resource_id, api_version)
            return found if full else found.get("properties", {})

        scope.resource_id = resource_id
        scope.subscription_resource_id = subscription_resource_id
        scope.reference = reference
        return scope

    def _id_of_declared(self, name: str) -> str:
        for resource in self.raw.get("resources", []):
            if isinstance(resource, dict) and str(resource.get("name", "")).lower() == name.lower():
                resource_type = self._known_types.get(str(resource.get("type")).lower(), resource.get("type"))
                return self.resource_id_of(resource_type, name.split("/"))
        raise TemplateError(f"reference('{name}'): the template declares no resource named '{name}'.")

    async def body_of(self, item: PlannedResource) -> dict:
        """The request body that applies the resource: its fields, expressions evaluated."""
        scope = self._scope(item.copy_name, item.copy_index)
        body = {k: v for k, v in item.source.items() if k not in _CONTROL_KEYS}
        evaluated = await evaluate(body, scope)
        return {k: v for k, v in evaluated.items() if v is not None}

    async def evaluate_outputs(self) -> dict:
        outputs = {}
        for name, spec in self.outputs.items():
            if not isinstance(spec, dict):
                raise TemplateError(f"Output '{name}' must be an object with a type and a value.")
            if "condition" in spec and not await evaluate(spec["condition"], self._scope()):
                continue
            outputs[name] = {"type": spec.get("type", "String"), "value": await evaluate(spec.get("value"), self._scope())}
        return outputs


def waves(planned: list[PlannedResource]) -> list[list[PlannedResource]]:
    """The resources in dependency order, grouped: each wave depends only on earlier ones."""
    remaining = {p.key: p for p in planned}
    done: set[str] = set()
    result = []
    while remaining:
        ready = [p for p in remaining.values() if p.depends_on <= done]
        if not ready:
            cycle = ", ".join(sorted(p.name for p in remaining.values()))
            raise TemplateError(f"Circular dependency detected among the template's resources: {cycle}.",
                                code="InvalidTemplate")
        result.append(ready)
        for p in ready:
            done.add(p.key)
            del remaining[p.key]
    return result


def _joined(parent: str, child: str) -> str:
    """`parent/child` for a nested resource's name (or its parent's type/name), as an expression
    when either part is one."""
    if not is_expression(parent) and not is_expression(child):
        return f"{parent}/{child}"

    def operand(part: str) -> str:
        return part[1:-1] if is_expression(part) else "'" + part.replace("'", "''") + "'"
    return f"[concat({operand(parent)}, '/', {operand(child)})]"


def _object(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TemplateError(f"The template's '{where}' must be a JSON object.")
    return value


def _supplied(parameters: object) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise TemplateError("properties.parameters must be a JSON object of {name: {value: …}}.",
                            target="properties.parameters")
    values = {}
    for name, entry in parameters.items():
        if not isinstance(entry, dict) or ("value" not in entry and "reference" not in entry):
            raise TemplateError(f"Parameter '{name}' must be given as {{\"value\": …}}.",
                                target=f"properties.parameters.{name}")
        if "reference" in entry:
            raise TemplateError(f"Parameter '{name}' is a Key Vault reference; Galley has no Key Vault. Pass the "
                                "value itself (securestring parameters are never stored).",
                                target=f"properties.parameters.{name}")
        values[name] = entry["value"]
    return values
