#!/usr/bin/env python
"""How long a create takes through the unmodified Azure SDK: quick answers against asynchronous ones.

Run from the repository root:

    python benchmarks/sdk_create.py              # 20 creates of each kind on each server
    python benchmarks/sdk_create.py --count 50
    python benchmarks/sdk_create.py --json       # machine-readable results on stdout

Two `galley serve` processes (HTTPS with Galley's own CA, the administrator's token from the
server's token endpoint, see galley_server.py), each on a fresh temporary GALLEY_HOME (SQLite):
one with the default GALLEY_QUICK_ANSWER_MS (writes whose work ends within the budget are answered
with their final state), one with GALLEY_QUICK_ANSWER_MS=0 (every write answered 201/202 with
Azure-AsyncOperation and Retry-After, as before: the baseline). azure-mgmt-compute, built as users
build it (default polling: no polling_interval, its own sleeps), creates a gallery, an image
definition, an empty disk and a version of an empty snapshot, `--count` times each, on both
servers in turn. Each figure is the wall time of `begin_create_or_update(...).result()`.

Progress goes to stderr; the table (or JSON) to stdout. Homes are removed at the end unless
--keep-home; servers listen on 127.0.0.1 only and are stopped by their own process id.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import galley_server  # noqa: E402  (benchmarks/galley_server.py: `galley serve`, its CA and its tokens)

SUBSCRIPTION = galley_server.SUBSCRIPTION
GROUP = "bench-rg"
LOCATION = "eastus"
RESOURCES_API = "2024-11-01"
GOAL_P50_MS = 50.0
KINDS = ("gallery", "definition", "disk", "version")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (with 20 samples, p99 is the slowest)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class ServerCredential:
    """The administrator's token of a `galley serve` process (azure-core's TokenCredential shape)."""

    def __init__(self, server: galley_server.Server) -> None:
        self.server = server

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken(self.server.token(), int(time.time()) + 600)


class Side:
    """One server and an SDK client on it, with a count of the requests the client sends."""

    def __init__(self, label: str, server: galley_server.Server) -> None:
        from azure.core.pipeline.policies import SansIOHTTPPolicy
        from azure.mgmt.compute import ComputeManagementClient

        side = self

        class CountRequests(SansIOHTTPPolicy):
            def on_request(self, request):
                side.requests += 1

        self.label, self.server, self.requests = label, server, 0
        # As users build it: ARM's bearer policy (over HTTPS), default polling, no patched sleeps.
        self.compute = ComputeManagementClient(
            credential=ServerCredential(server), subscription_id=SUBSCRIPTION, base_url=server.url,
            credential_scopes=[f"{server.url}/.default"], connection_verify=str(server.ca_file),
            per_call_policies=[CountRequests()])
        self.samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.polls: dict[str, list[int]] = {kind: [] for kind in KINDS}

    def prepare(self) -> None:
        """Resource group, the versions' gallery and definition, and their source: an empty snapshot."""
        from azure.mgmt.compute import models as m

        with self.server.client(timeout=30) as client:
            response = client.put(f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{GROUP}",
                                  params={"api-version": RESOURCES_API}, json={"location": LOCATION})
            response.raise_for_status()
        self.create("gallery", "versions", timed=False)
        self.create("definition", "versions", timed=False)
        self.snapshot = self.compute.snapshots.begin_create_or_update(GROUP, "source", m.Snapshot(
            location=LOCATION, os_type="Linux", disk_size_gb=1,
            creation_data=m.CreationData(create_option="Empty"))).result()

    def create(self, kind: str, name: str, timed: bool = True) -> None:
        from azure.mgmt.compute import models as m

        compute = self.compute
        if kind == "gallery":
            poller = lambda: compute.galleries.begin_create_or_update(  # noqa: E731
                GROUP, f"gal_{name}", m.Gallery(location=LOCATION))
        elif kind == "definition":
            poller = lambda: compute.gallery_images.begin_create_or_update(  # noqa: E731
                GROUP, "gal_versions", f"def-{name}", m.GalleryImage(
                    location=LOCATION, os_type="Linux", os_state="Generalized",
                    identifier=m.GalleryImageIdentifier(publisher="bench", offer="sdk", sku=f"sku-{name}")))
        elif kind == "disk":
            poller = lambda: compute.disks.begin_create_or_update(  # noqa: E731
                GROUP, f"disk-{name}", m.Disk(location=LOCATION, disk_size_gb=1,
                                              creation_data=m.CreationData(create_option="Empty")))
        else:
            poller = lambda: compute.gallery_image_versions.begin_create_or_update(  # noqa: E731
                GROUP, "gal_versions", "def-versions", f"1.0.{name}", m.GalleryImageVersion(
                    location=LOCATION,
                    publishing_profile=m.GalleryImageVersionPublishingProfile(
                        target_regions=[m.TargetRegion(name=LOCATION)]),
                    storage_profile=m.GalleryImageVersionStorageProfile(
                        os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(id=self.snapshot.id)))))
        before = self.requests
        started = time.perf_counter()
        made = poller().result()
        elapsed = time.perf_counter() - started
        state = getattr(made, "provisioning_state", None) or made.properties.provisioning_state
        if state != "Succeeded":
            raise RuntimeError(f"{self.label}: {kind} {name} ended {state}")
        if timed:
            self.samples[kind].append(elapsed * 1000)
            self.polls[kind].append(self.requests - before - 1)

    def summary(self) -> dict:
        out = {}
        for kind in KINDS:
            values = sorted(self.samples[kind])
            out[kind] = {"creates": len(values), "p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
                         "mean_ms": statistics.fmean(values) if values else float("nan"),
                         "max_ms": values[-1] if values else float("nan"),
                         "polls_per_create": statistics.fmean(self.polls[kind]) if values else float("nan")}
        return out


def render(results: dict) -> str:
    env = results["environment"]
    quick, base = results["quick"], results["baseline"]
    lines = ["Galley SDK create latency: quick answers vs. asynchronous answers (the baseline)",
             f"  python {env['python']}, azure-mgmt-compute {env['azure_mgmt_compute']}, "
             f"azure-core {env['azure_core']}, {env['cpus']} CPUs, {env['platform']}",
             "  servers: `galley serve` over HTTPS (Galley's CA), bearer token, SQLite, fresh homes; "
             f"quick: {results['quick_setting']}; baseline: GALLEY_QUICK_ANSWER_MS=0",
             "  client: ComputeManagementClient with default polling; time of begin_create_or_update().result(); "
             f"{results['count']} creates of each kind on each server, in turn",
             "  load average (1/5/15 min): start " + " ".join(f"{v:.2f}" for v in results["load_avg"]["start"])
             + ", end " + " ".join(f"{v:.2f}" for v in results["load_avg"]["end"]),
             "",
             f"  {'create':<34} {'quick p50':>10} {'p99':>8} {'polls':>6}   {'baseline p50':>13} {'p99':>8} "
             f"{'polls':>6}  {'speed-up':>8}  goal p50 < {GOAL_P50_MS:g} ms"]
    labels = {"gallery": "gallery", "definition": "image definition", "disk": "empty disk (1 GB)",
              "version": "version of an empty snapshot (1 GB)"}
    for kind in KINDS:
        q, b = quick[kind], base[kind]
        lines.append(f"  {labels[kind]:<34} {q['p50_ms']:>8.1f}ms {q['p99_ms']:>6.1f}ms {q['polls_per_create']:>6.1f}"
                     f"   {b['p50_ms']:>11.1f}ms {b['p99_ms']:>6.1f}ms {b['polls_per_create']:>6.1f}"
                     f"  {b['p50_ms'] / q['p50_ms']:>7.0f}x  {'PASS' if q['p50_ms'] < GOAL_P50_MS else 'FAIL'}")
    note = "; with fewer than 100 samples p99 is the slowest one" if results["count"] < 100 else ""
    lines.append(f"  (polls: requests after the create itself, per create{note})")
    return "\n".join(lines)


def environment() -> dict:
    from importlib.metadata import version

    return {"python": platform.python_version(), "azure_mgmt_compute": version("azure-mgmt-compute"),
            "azure_core": version("azure-core"), "cpus": os.cpu_count(), "platform": platform.platform(terse=True)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SDK create latency, quick answers vs. asynchronous answers.")
    parser.add_argument("--count", type=int, default=20, help="creates of each kind on each server (default 20)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary GALLEY_HOMEs")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not 1 <= args.count <= 900:
        raise SystemExit("--count must be between 1 and 900 (version names 1.0.0 to 1.0.899)")
    root = Path(tempfile.mkdtemp(prefix="galley-bench-sdk-"))
    log(f"homes under {root}")
    results: dict = {"environment": environment(), "count": args.count,
                     "quick_setting": "GALLEY_QUICK_ANSWER_MS unset (default 200)",
                     "load_avg": {"start": os.getloadavg()}}
    servers: list[galley_server.Server] = []
    try:
        quick = galley_server.Server(root / "quick")
        base = galley_server.Server(root / "baseline", extra_env={"GALLEY_QUICK_ANSWER_MS": "0"})
        for server in (quick, base):
            servers.append(server)
            server.start()
        sides = [Side("quick", quick), Side("baseline", base)]
        for side in sides:
            log(f"{side.label}: resource group, gallery, definition, source snapshot; one warm-up create each")
            side.prepare()
            for kind in KINDS:
                side.create(kind, "999" if kind == "version" else "warm", timed=False)
        for i in range(args.count):
            for side in sides:
                for kind in KINDS:
                    side.create(kind, str(i))
            if (i + 1) % 5 == 0:
                log(f"  {i + 1}/{args.count} rounds")
        results["quick"], results["baseline"] = sides[0].summary(), sides[1].summary()
        results["load_avg"]["end"] = os.getloadavg()
    finally:
        for server in reversed(servers):
            server.stop()
        if args.keep_home:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["goals"] = {f"{kind} p50 < {GOAL_P50_MS:g} ms": results["quick"][kind]["p50_ms"] < GOAL_P50_MS
                        for kind in KINDS}
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
