"""Microsoft.Network resources a VM deployment names: virtual networks (with their subnets),
network security groups, public IP addresses and network interfaces.

What they are in Galley, plainly: configuration records. Galley's virtual machines run under
QEMU with user-mode networking (slirp): each guest has one virtio NIC on QEMU's private 10.0.2.0/24
network, reaches out through the host, and is reached only by SSH forwarded from a loopback port on
the Galley host (the VM's instance view names the port). So:
- a virtual network's address space and subnets, and a security group's rules, are recorded and
  shown, and referenced ids are checked, but nothing enforces them;
- a public IP address gets no address: `ipAddress` stays absent (Galley has none to give), whatever
  its allocation method; a DNS label is kept but no name is published (no `fqdn`);
- a network interface reports the one private address that is true for every Galley guest,
  10.0.2.15 (what QEMU's user network hands the guest by DHCP), on its primary IP configuration;
  a Static request for any other address is refused rather than recorded as if it held. No MAC
  address is reported.
"""

from __future__ import annotations

import ipaddress
import re
import uuid

from . import enums, fields
from .errors import InvalidParameter, InvalidResourceName
from .ports import Context
from .resource import Resource

VIRTUAL_NETWORK_TYPE = "Microsoft.Network/virtualNetworks"
SECURITY_GROUP_TYPE = "Microsoft.Network/networkSecurityGroups"
PUBLIC_IP_TYPE = "Microsoft.Network/publicIPAddresses"
NETWORK_INTERFACE_TYPE = "Microsoft.Network/networkInterfaces"

# The address QEMU's user-mode network gives the (first) guest: the one a Galley NIC can truthfully report.
GUEST_ADDRESS = "10.0.2.15"

# Azure's network names: 1-80 word characters, periods and hyphens; start with a letter or digit,
# end with a letter, digit or underscore.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?")


def _check_name(name: str, what: str, target: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidResourceName(
            f"{what} name '{name}' is invalid: use 1-80 letters, digits, underscores, periods and hyphens, "
            "starting with a letter or digit and ending with a letter, digit or underscore.", target=target)


def _prefix(value: object, target: str) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(f"Property '{target}' must be an address prefix in CIDR form such as "
                               f"10.0.0.0/16; got {value!r}.", target=target)
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as error:
        raise InvalidParameter(f"'{value}' at '{target}' is not a valid address prefix: {error}.",
                               code="InvalidAddressPrefixFormat", target=target) from None


def _named_items(props: dict, key: str, target: str) -> list[tuple[str, dict]]:
    """A list of {name, properties} child items (subnets, rules, IP configurations), names unique."""
    items, seen = [], set()
    for i, item in enumerate(fields.array(props, key, target) or []):
        where = f"{target}[{i}]"
        if not isinstance(item, dict):
            raise InvalidParameter(f"Property '{where}' must be a JSON object.", target=where)
        name = fields.string(item, "name", f"{where}.name", required=True)
        _check_name(name, "Child resource", f"{where}.name")
        if name.lower() in seen:
            raise InvalidParameter(f"'{target}' names '{name}' twice.", code="DuplicateResourceName",
                                   target=f"{where}.name")
        seen.add(name.lower())
        items.append((name, fields.obj(item, "properties", f"{where}.properties") or {}))
    return items


def _reference(ctx: Context, holder: dict, key: str, target: str, expected_type: str) -> dict | None:
    """A `{"id": …}` reference to another resource, which must exist and be of the expected type."""
    ref = fields.obj(holder, key, target)
    if ref is None:
        return None
    resource_id = fields.string(ref, "id", f"{target}.id", required=True)
    found = ctx.tx.get(resource_id)
    if found is None or found.type.lower() != expected_type.lower():
        raise InvalidParameter(f"Resource '{resource_id}' referenced by '{target}' was not found "
                               f"(expected a {expected_type.split('/')[-1]}).",
                               code="InvalidResourceReference", target=target)
    return {"id": resource_id}


def _guid(existing: Resource | None) -> str:
    return existing.properties["resourceGuid"] if existing is not None else str(uuid.uuid4())


class _Kind:
    def __init__(self, arm_type: str, kind: str, name_target: str) -> None:
        self.TYPE = arm_type
        self.KIND = kind
        self._name_target = name_target

    READ_ONLY = frozenset({"provisioningState", "resourceGuid"})

    def check_name(self, name: str) -> None:
        _check_name(name, self.KIND.capitalize(), self._name_target)


# ---- virtual networks -------------------------------------------------------------------------

class _VirtualNetworks(_Kind):
    UPDATABLE = frozenset({"addressSpace", "subnets", "dhcpOptions", "enableDdosProtection"})

    def normalize(self, ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
        space = fields.obj(props, "addressSpace", "properties.addressSpace", required=True)
        prefixes = [_prefix(p, f"properties.addressSpace.addressPrefixes[{i}]")
                    for i, p in enumerate(fields.array(space, "addressPrefixes",
                                                       "properties.addressSpace.addressPrefixes") or [])]
        if not prefixes:
            raise InvalidParameter("A virtual network needs at least one address prefix in "
                                   "properties.addressSpace.addressPrefixes.",
                                   target="properties.addressSpace.addressPrefixes")
        subnets = []
        for i, (name, sub) in enumerate(_named_items(props, "subnets", "properties.subnets")):
            subnet_prefixes = _subnet_prefixes(sub, name, prefixes, f"properties.subnets[{i}].properties")
            kept = {"addressPrefix": subnet_prefixes[0]} if len(subnet_prefixes) == 1 else \
                {"addressPrefixes": subnet_prefixes}
            subnet = {"id": f"{resource.id}/subnets/{name}", "name": name,
                      "type": f"{VIRTUAL_NETWORK_TYPE}/subnets",
                      "properties": {**kept, "provisioningState": "Succeeded"}}
            nsg = _reference(ctx, sub, "networkSecurityGroup",
                             f"properties.subnets[{i}].properties.networkSecurityGroup", SECURITY_GROUP_TYPE)
            if nsg:
                subnet["properties"]["networkSecurityGroup"] = nsg
            subnets.append(subnet)
        result = {"addressSpace": {"addressPrefixes": prefixes}, "subnets": subnets,
                  "enableDdosProtection": bool(fields.boolean(props, "enableDdosProtection",
                                                              "properties.enableDdosProtection")),
                  "resourceGuid": _guid(existing)}
        dhcp = fields.obj(props, "dhcpOptions", "properties.dhcpOptions")
        if dhcp and dhcp.get("dnsServers"):
            servers = fields.array(dhcp, "dnsServers", "properties.dhcpOptions.dnsServers") or []
            for i, server in enumerate(servers):
                try:
                    ipaddress.ip_address(server)
                except ValueError:
                    raise InvalidParameter(f"'{server}' is not an IP address.",
                                           target=f"properties.dhcpOptions.dnsServers[{i}]") from None
            result["dhcpOptions"] = {"dnsServers": servers}
        return result


def _subnet_prefixes(sub: dict, name: str, space: list[str], where: str) -> list[str]:
    """A subnet's prefix (addressPrefix) or prefixes (addressPrefixes), each inside the address space."""
    if sub.get("addressPrefix") is not None:
        given, target = [sub["addressPrefix"]], f"{where}.addressPrefix"
    else:
        given, target = fields.array(sub, "addressPrefixes", f"{where}.addressPrefixes") or [], \
            f"{where}.addressPrefixes"
    if not given:
        raise InvalidParameter(f"Subnet '{name}' needs an addressPrefix.", target=f"{where}.addressPrefix")
    networks = [ipaddress.ip_network(p) for p in space]
    prefixes = []
    for value in given:
        prefix = _prefix(value, target)
        network = ipaddress.ip_network(prefix)
        if not any(n.version == network.version and network.subnet_of(n) for n in networks):
            raise InvalidParameter(f"Subnet '{name}' is not valid because its IP address range {prefix} is "
                                   f"outside the virtual network's address space {', '.join(space)}.",
                                   code="NetcfgSubnetRangeOutsideVnet", target=target)
        prefixes.append(prefix)
    return prefixes


def subnet_exists(network: Resource, subnet_name: str) -> bool:
    return any(s["name"].lower() == subnet_name.lower() for s in network.properties.get("subnets", []))


# ---- network security groups ------------------------------------------------------------------

PROTOCOLS = ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")
ACCESS = ("Allow", "Deny")
DIRECTIONS = ("Inbound", "Outbound")
# Azure's default rules of every security group (fixed facts, reported read-only).
_DEFAULT_RULES = (
    ("AllowVnetInBound", "Allow", "Inbound", 65000, "VirtualNetwork", "VirtualNetwork"),
    ("AllowAzureLoadBalancerInBound", "Allow", "Inbound", 65001, "AzureLoadBalancer", "*"),
    ("DenyAllInBound", "Deny", "Inbound", 65500, "*", "*"),
    ("AllowVnetOutBound", "Allow", "Outbound", 65000, "VirtualNetwork", "VirtualNetwork"),
    ("AllowInternetOutBound", "Allow", "Outbound", 65001, "*", "Internet"),
    ("DenyAllOutBound", "Deny", "Outbound", 65500, "*", "*"),
)


class _SecurityGroups(_Kind):
    UPDATABLE = frozenset({"securityRules"})
    READ_ONLY = _Kind.READ_ONLY | {"defaultSecurityRules"}

    def normalize(self, ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
        rules, priorities = [], {}
        for i, (name, rule) in enumerate(_named_items(props, "securityRules", "properties.securityRules")):
            where = f"properties.securityRules[{i}].properties"
            direction = enums.normalize(rule.get("direction"), DIRECTIONS, f"{where}.direction", required=True)
            priority = fields.integer(rule, "priority", f"{where}.priority", minimum=100, maximum=4096)
            if priority is None:
                raise InvalidParameter(f"Security rule '{name}' needs a priority (100-4096).",
                                       target=f"{where}.priority")
            clash = priorities.get((direction, priority))
            if clash:
                raise InvalidParameter(f"Rules '{clash}' and '{name}' have the same priority {priority} and "
                                       f"direction {direction}.", code="SecurityRuleConflict",
                                       target=f"{where}.priority")
            priorities[(direction, priority)] = name
            kept = {
                "protocol": enums.normalize(rule.get("protocol"), PROTOCOLS, f"{where}.protocol", required=True),
                "access": enums.normalize(rule.get("access"), ACCESS, f"{where}.access", required=True),
                "direction": direction, "priority": priority,
            }
            for key in ("sourcePortRange", "destinationPortRange", "sourceAddressPrefix",
                        "destinationAddressPrefix", "description"):
                value = fields.string(rule, key, f"{where}.{key}")
                if value is not None:
                    kept[key] = value
            for key in ("sourcePortRanges", "destinationPortRanges", "sourceAddressPrefixes",
                        "destinationAddressPrefixes"):
                kept[key] = [str(v) for v in fields.array(rule, key, f"{where}.{key}") or []]
            kept["provisioningState"] = "Succeeded"
            rules.append({"id": f"{resource.id}/securityRules/{name}", "name": name,
                          "type": f"{SECURITY_GROUP_TYPE}/securityRules", "properties": kept})
        defaults = [{"id": f"{resource.id}/defaultSecurityRules/{name}", "name": name,
                     "type": f"{SECURITY_GROUP_TYPE}/defaultSecurityRules",
                     "properties": {"protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
                                    "sourceAddressPrefix": source, "destinationAddressPrefix": destination,
                                    "access": access, "priority": priority, "direction": direction,
                                    "provisioningState": "Succeeded"}}
                    for name, access, direction, priority, source, destination in _DEFAULT_RULES]
        return {"securityRules": rules, "defaultSecurityRules": defaults, "resourceGuid": _guid(existing)}


# ---- public IP addresses ----------------------------------------------------------------------

PUBLIC_IP_SKUS = ("Basic", "Standard")
PUBLIC_IP_TIERS = ("Regional", "Global")


class _PublicAddresses(_Kind):
    UPDATABLE = frozenset({"publicIPAllocationMethod", "idleTimeoutInMinutes", "dnsSettings"})

    def normalize(self, ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
        result = {
            "publicIPAllocationMethod": enums.normalize(
                props.get("publicIPAllocationMethod"), ("Dynamic", "Static"),
                "properties.publicIPAllocationMethod", default="Dynamic"),
            "publicIPAddressVersion": enums.normalize(
                props.get("publicIPAddressVersion"), ("IPv4", "IPv6"), "properties.publicIPAddressVersion",
                default="IPv4"),
            "idleTimeoutInMinutes": fields.integer(props, "idleTimeoutInMinutes", "properties.idleTimeoutInMinutes",
                                                   minimum=4, maximum=30) or 4,
            "ipTags": [],
            "resourceGuid": _guid(existing),
        }
        dns = fields.obj(props, "dnsSettings", "properties.dnsSettings")
        label = fields.string(dns, "domainNameLabel", "properties.dnsSettings.domainNameLabel") if dns else None
        if label:
            if not re.fullmatch(r"[a-z][a-z0-9-]{1,61}[a-z0-9]", label):
                raise InvalidParameter(f"DNS label '{label}' is invalid: 3-63 lower-case letters, digits and "
                                       "hyphens, starting with a letter.", code="InvalidDomainNameLabel",
                                       target="properties.dnsSettings.domainNameLabel")
            result["dnsSettings"] = {"domainNameLabel": label}
        return result

    def normalize_sku(self, body: dict, existing: Resource | None) -> dict:
        sku = fields.obj(body, "sku", "sku")
        if sku is None:
            return existing.sku if existing is not None and existing.sku else {"name": "Basic", "tier": "Regional"}
        return {"name": enums.normalize(sku.get("name"), PUBLIC_IP_SKUS, "sku.name", default="Basic"),
                "tier": enums.normalize(sku.get("tier"), PUBLIC_IP_TIERS, "sku.tier", default="Regional")}


# ---- network interfaces -----------------------------------------------------------------------

class _NetworkInterfaces(_Kind):
    UPDATABLE = frozenset({"ipConfigurations", "networkSecurityGroup", "enableAcceleratedNetworking",
                           "enableIPForwarding", "dnsSettings"})

    def normalize(self, ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
        configs = _named_items(props, "ipConfigurations", "properties.ipConfigurations")
        if not configs:
            raise InvalidParameter("A network interface needs at least one IP configuration in "
                                   "properties.ipConfigurations.", target="properties.ipConfigurations")
        primaries = [i for i, (_, c) in enumerate(configs) if c.get("primary") is True]
        if len(primaries) > 1:
            raise InvalidParameter("Only one IP configuration of a network interface can be primary.",
                                   target="properties.ipConfigurations")
        primary_index = primaries[0] if primaries else 0
        result_configs = []
        for i, (name, config) in enumerate(configs):
            where = f"properties.ipConfigurations[{i}].properties"
            subnet = _reference_subnet(ctx, config, f"{where}.subnet")
            method = enums.normalize(config.get("privateIPAllocationMethod"), ("Dynamic", "Static"),
                                     f"{where}.privateIPAllocationMethod", default="Dynamic")
            requested = fields.string(config, "privateIPAddress", f"{where}.privateIPAddress")
            primary = i == primary_index
            if method == "Static" and (requested != GUEST_ADDRESS or not primary):
                raise InvalidParameter(
                    f"Galley cannot give '{requested}' to a guest: its VMs use QEMU's user-mode network, where "
                    f"the guest's address is always {GUEST_ADDRESS} (on the primary IP configuration). Use "
                    "Dynamic allocation.", code="PrivateIPAddressNotAvailable", target=f"{where}.privateIPAddress")
            kept = {"privateIPAllocationMethod": method, "privateIPAddressVersion": "IPv4", "subnet": subnet,
                    "primary": primary, "provisioningState": "Succeeded"}
            if primary:
                kept["privateIPAddress"] = GUEST_ADDRESS
            public = _reference(ctx, config, "publicIPAddress", f"{where}.publicIPAddress", PUBLIC_IP_TYPE)
            if public:
                kept["publicIPAddress"] = public
            result_configs.append({"id": f"{resource.id}/ipConfigurations/{name}", "name": name,
                                   "type": f"{NETWORK_INTERFACE_TYPE}/ipConfigurations", "properties": kept})
        result = {"ipConfigurations": result_configs,
                  "enableAcceleratedNetworking": bool(fields.boolean(
                      props, "enableAcceleratedNetworking", "properties.enableAcceleratedNetworking")),
                  "enableIPForwarding": bool(fields.boolean(props, "enableIPForwarding",
                                                            "properties.enableIPForwarding")),
                  "nicType": "Standard", "resourceGuid": _guid(existing)}
        nsg = _reference(ctx, props, "networkSecurityGroup", "properties.networkSecurityGroup", SECURITY_GROUP_TYPE)
        if nsg:
            result["networkSecurityGroup"] = nsg
        return result


def _reference_subnet(ctx: Context, config: dict, target: str) -> dict:
    ref = fields.obj(config, "subnet", target, required=True)
    subnet_id = fields.string(ref, "id", f"{target}.id", required=True)
    network_id, _, subnet_name = subnet_id.rstrip("/").rpartition("/subnets/")
    network = ctx.tx.get(network_id) if network_id else None
    if network is None or network.type != VIRTUAL_NETWORK_TYPE or not subnet_exists(network, subnet_name):
        raise InvalidParameter(f"Subnet '{subnet_id}' referenced by '{target}' was not found.",
                               code="InvalidResourceReference", target=target)
    return {"id": subnet_id}


VIRTUAL_NETWORKS = _VirtualNetworks(VIRTUAL_NETWORK_TYPE, "virtual network", "virtualNetworkName")
SECURITY_GROUPS = _SecurityGroups(SECURITY_GROUP_TYPE, "network security group", "networkSecurityGroupName")
PUBLIC_ADDRESSES = _PublicAddresses(PUBLIC_IP_TYPE, "public IP address", "publicIpAddressName")
NETWORK_INTERFACES = _NetworkInterfaces(NETWORK_INTERFACE_TYPE, "network interface", "networkInterfaceName")
KINDS = (VIRTUAL_NETWORKS, SECURITY_GROUPS, PUBLIC_ADDRESSES, NETWORK_INTERFACES)
