"""ARM paths are case-insensitive in their fixed words (resourceGroups, Microsoft.Compute, ...).

Routes are declared in lower case; this middleware lowers the fixed words of each incoming path
and leaves the names (which keep the casing the user gave them) untouched.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

# Words that are followed by a name; 'providers' is followed by a namespace and then a word.
_NAMED = {"subscriptions", "resourcegroups", "galleries", "images", "versions", "disks", "snapshots",
          "locations", "operations", "operationresults", "storageaccounts", "imagetemplates",
          "runoutputs", "publishers", "offers", "skus", "sharedgalleries", "communitygalleries",
          "userassignedidentities", "virtualnetworks", "subnets", "networksecuritygroups",
          "publicipaddresses", "networkinterfaces", "deployments", "operationstatuses", "virtualmachines"}


def canonical_path(path: str) -> str:
    segments = path.split("/")
    # An empty segment inside the path is dropped, as ARM does: az's generic resource reads send
    # `providers/Microsoft.Network//virtualNetworks/…` when the resource has no parent.
    segments = [segments[0], *(s for s in segments[1:-1] if s), segments[-1]] if len(segments) > 2 else segments
    expect = "word"
    for i, segment in enumerate(segments[1:], start=1):
        if expect == "name":
            expect = "word"
            continue
        lowered = segment.lower()
        segments[i] = lowered
        if expect == "namespace":
            expect = "word"
        elif lowered == "providers":
            expect = "namespace"
        elif lowered in _NAMED:
            expect = "name"
    return "/".join(segments)


class CanonicalPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("//"):
            # az joins an endpoint ending in '/' with a path starting with one ('//metadata/...').
            scope = dict(scope)
            scope["path"] = "/" + scope["path"].lstrip("/")
            scope["raw_path"] = scope["path"].encode()
        if scope["type"] == "http" and (scope["path"][:15].lower() == "/subscriptions/"
                                        or scope["path"][:34].lower() == "/providers/microsoft.authorization"
                                        or scope["path"][:34].lower() == "/providers/microsoft.resourcegraph"):
            scope = dict(scope)
            scope["path"] = canonical_path(scope["path"])
            scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)
