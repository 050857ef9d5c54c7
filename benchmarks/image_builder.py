#!/usr/bin/env python
"""Galley Image Builder benchmark: one template build, end to end, against virt-customize + virt-sysprep.

Run from the repository root, as root:

    python benchmarks/image_builder.py                  # both sides (about 5-10 min on 2 CPUs)
    python benchmarks/image_builder.py --skip-galley    # the baseline only
    python benchmarks/image_builder.py --skip-baseline  # Galley only
    python benchmarks/image_builder.py --json           # machine-readable results on stdout

The work: start from the Debian 12 platform image (built once with galley.builder.debian and kept
in --work-dir; that import is not counted), run one Shell customizer that writes a file, runs
`apt-get update` and installs one package (--package, default tree), generalize, and distribute
to a gallery with one region.
- Galley: a `galley serve` process on 127.0.0.1 with a new GALLEY_HOME; the platform image is
  registered (not counted); then, counted: resource group, gallery, Linux image definition, image
  template, POST run, polled every 0.2 s until lastRunStatus.runState is final.
- Baseline, on the same machine and file system: `cp --sparse=always` of the platform image,
  `virt-customize --network` with the same three commands, `virt-sysprep` (default operations),
  and `qemu-img convert -O raw` into a gallery folder followed by `sync`. libguestfs runs with
  LIBGUESTFS_BACKEND=direct and LIBGUESTFS_BACKEND_SETTINGS=force_tcg (QEMU cannot use KVM here).
The table (or the JSON document) goes to stdout, progress to stderr. See benchmarks/README.md
("Image Builder") for what each figure means and the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from galley_server import ROOT, Server

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
GROUP = "bench-image-builder"
GALLERY = "benchgallery"
DEFINITION = "debian-12-bench"
TEMPLATE = "bench-debian-12"
RUN_OUTPUT = "bench"
REGION = "eastus"
RESOURCES_API = "2024-11-01"
GALLERY_API = "2026-03-03"
BUILDER_API = "2022-07-01"

PLATFORM = {"publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "0.20261122.1"}
PLATFORM_NAME = "debian-12"
BENCH_FILE = "/etc/galley-bench"
PHASES = ("Building", "Customizing", "Validating", "Distributing")
FINAL_RUN_STATES = ("Succeeded", "Failed", "Canceled", "PartiallySucceeded")

GOAL_SPEEDUP = 5.0
GOAL_TOTAL_S = 60.0
STEP_TIMEOUT_S = 1800
POLL_S = 0.2

LIBGUESTFS_ENV = {"LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}


def log(message: str) -> None:
    print(f"[image-builder {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())


def customizer_commands(package: str) -> list[str]:
    """The one Shell customizer's lines; the baseline runs the same ones with --run-command."""
    return [f"echo hello > {BENCH_FILE}", "apt-get update",
            f"apt-get install -y --no-install-recommends {package}"]


def run_timed(argv: list[str], *, env: dict | None = None, timeout: float = STEP_TIMEOUT_S,
              log_path: Path | None = None) -> float:
    """Run a command to completion (bounded in time); its wall seconds. Output goes to log_path."""
    started = time.perf_counter()
    out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL
    try:
        if log_path is not None:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            raise TimeoutError(f"{argv[0]} took more than {timeout:.0f} s") from None
        except BaseException:
            process.kill()
            process.wait(timeout=30)
            raise
    finally:
        if log_path is not None:
            out.close()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        tail = ""
        if log_path is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{' '.join(argv[:4])}… exited with {process.returncode} after {elapsed:.1f} s:\n{tail}")
    return elapsed


def first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "(not available)"


# ---- 1. the platform image (one-time import, not counted) -----------------------------------------

def platform_image(work: Path) -> tuple[Path, float, bool]:
    """The Debian 12 platform raw image in the work folder: (path, seconds, built now)."""
    target = work / "debian-12-platform.raw"
    if target.is_file():
        return target, 0.0, False
    from galley.builder.debian import build_debian_image

    cache = Path(os.environ.get("GALLEY_TEST_CACHE", "/var/cache/galley-tests"))
    partial = work / ".debian-12-platform.raw.partial"
    partial.unlink(missing_ok=True)
    log(f"building the Debian 12 platform image (debootstrap cache: {cache})")
    started = time.perf_counter()
    meta = build_debian_image(partial, cache_dir=cache, size_gib=2, progress=lambda line: log(f"  {line}"))
    os.replace(partial, target)
    seconds = time.perf_counter() - started
    log(f"platform image ready in {seconds:.1f} s (debootstrap cache hit: {meta.get('cache_hit')}, "
        f"kernel {meta.get('kernel_version')}, {meta.get('packages_count')} packages)")
    return target, seconds, True


def allocated_mib(path: Path) -> float:
    return path.stat().st_blocks * 512 / 1024 / 1024


# ---- 2. the baseline: virt-customize + virt-sysprep ------------------------------------------------

def ensure_libguestfs() -> list[str]:
    """Install guestfs-tools (and a kernel for the appliance) if missing; what was installed."""
    wanted = []
    if shutil.which("virt-customize") is None or shutil.which("virt-sysprep") is None:
        wanted.append("guestfs-tools")
    if shutil.which("guestfish") is None:
        wanted.append("guestfish")
    if not list(Path("/boot").glob("vmlinuz-*")):
        wanted.append("linux-image-amd64")  # supermin builds the appliance from the host's kernel
    if wanted:
        log(f"installing {' '.join(wanted)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *wanted], env=env,
                          stdout=subprocess.DEVNULL, timeout=STEP_TIMEOUT_S).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, timeout=STEP_TIMEOUT_S)
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *wanted], env=env,
                           stdout=subprocess.DEVNULL, timeout=STEP_TIMEOUT_S, check=True)
    return wanted


def run_baseline(args: argparse.Namespace, source: Path, work: Path) -> dict:
    installed = ensure_libguestfs()
    folder = work / "baseline"
    gallery = work / "baseline-gallery"
    for path in (folder, gallery):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    try:
        return _baseline_steps(args, source, work, folder, gallery, installed)
    finally:
        if not args.keep_images:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(gallery, ignore_errors=True)


def _baseline_steps(args: argparse.Namespace, source: Path, work: Path, folder: Path, gallery: Path,
                    installed: list[str]) -> dict:
    log_path = work / "baseline.log"
    log_path.write_text("")
    disk = folder / "disk.raw"
    published = gallery / f"{RUN_OUTPUT}.raw"
    result: dict = {"installed": installed, "log": str(log_path), "steps": {}, "load_start": loadavg()}

    # Not counted: supermin builds its appliance from the host's files on first use (kept in
    # /var/tmp/.guestfs-0); a warm-up launch makes sure that is done, as the platform import is.
    appliance_cached = any(Path("/var/tmp").glob(f".guestfs-{os.getuid()}/appliance.d/kernel"))
    started = time.perf_counter()
    run_timed(["guestfish", "-a", "/dev/null", "run"], env=LIBGUESTFS_ENV, log_path=log_path)
    result["warmup_seconds"] = time.perf_counter() - started
    result["appliance_was_cached"] = appliance_cached
    log(f"baseline: libguestfs warm-up (appliance {'cached' if appliance_cached else 'built now'}) "
        f"{result['warmup_seconds']:.1f} s")

    steps = result["steps"]
    log("baseline: cp --sparse=always of the platform image")
    steps["copy"] = run_timed(["cp", "--sparse=always", str(source), str(disk)], log_path=log_path)
    customize = ["virt-customize", "--format", "raw", "-a", str(disk), "--network"]
    for line in customizer_commands(args.package):
        customize += ["--run-command", line]
    log("baseline: " + " ".join(customize[:1] + ["…"] + customize[-2:]))
    steps["customize"] = run_timed(customize, env=LIBGUESTFS_ENV, log_path=log_path)
    log(f"baseline: virt-customize {steps['customize']:.1f} s; virt-sysprep (default operations)")
    steps["generalize"] = run_timed(["virt-sysprep", "--format", "raw", "-a", str(disk)],
                                    env=LIBGUESTFS_ENV, log_path=log_path)
    log(f"baseline: virt-sysprep {steps['generalize']:.1f} s; qemu-img convert -O raw into the gallery folder + sync")
    convert = run_timed(["qemu-img", "convert", "-f", "raw", "-O", "raw", str(disk), str(published)],
                        log_path=log_path)
    started = time.perf_counter()
    os.sync()
    sync = time.perf_counter() - started
    steps["distribute"] = convert + sync
    result["distribute_convert_seconds"] = convert
    result["distribute_sync_seconds"] = sync
    result["total_seconds"] = sum(steps.values())
    result["image_allocated_mib"] = allocated_mib(published)

    # Not counted: the published image has the file and the package.
    check = subprocess.run(["guestfish", "--ro", "--format=raw", "-a", str(published), "-i",
                            "cat", BENCH_FILE, ":", "is-file", f"/usr/bin/{args.package}"],
                           capture_output=True, text=True, env={**os.environ, **LIBGUESTFS_ENV},
                           timeout=STEP_TIMEOUT_S)
    lines = check.stdout.split()
    result["check"] = {"ok": check.returncode == 0 and lines[:1] == ["hello"] and lines[-1:] == ["true"],
                       "output": (check.stdout + check.stderr).strip()[-500:]}
    log(f"baseline: total {result['total_seconds']:.1f} s; result check: {result['check']}")
    return result


# ---- 3. Galley: the real API -------------------------------------------------------------------

def _check(response, what: str, ok=(200, 201, 202)):
    if response.status_code not in ok:
        raise RuntimeError(f"{what} -> HTTP {response.status_code}: {response.text[:2000]}")
    return response


def _wait_async(client, response, what: str, timeout: float) -> None:
    """Follow Azure-AsyncOperation / Location of a 201/202 until the operation is final."""
    url = response.headers.get("Azure-AsyncOperation") or response.headers.get("Location")
    if response.status_code not in (201, 202) or not url:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        polled = client.get(url)
        if polled.status_code == 200:
            try:
                status = polled.json().get("status")
            except ValueError:
                status = None
            if status is None or status in ("Succeeded", "Failed", "Canceled"):
                if status in ("Failed", "Canceled"):
                    raise RuntimeError(f"{what}: {polled.text[:2000]}")
                return
        elif polled.status_code not in (202,):
            raise RuntimeError(f"{what}: polling {url} -> HTTP {polled.status_code}: {polled.text[:2000]}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not finish in {timeout:.0f} s")


def import_platform(server: Server, source: Path) -> dict:
    """Register the platform image: `galley platform import` if the CLI has it, else the admin PUT.

    The CLI signs in from the server's $GALLEY_HOME/credentials.json (its own home, GALLEY_CLI_HOME,
    is kept inside the server's, so no `galley login` elsewhere on the machine is used) and trusts
    the server's CA."""
    env = server.env()
    if server.ca_file is not None:
        env["GALLEY_CA_BUNDLE"] = str(server.ca_file)
    probe = subprocess.run([sys.executable, "-m", "galley.cli.main", "platform", "import", "--help"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    started = time.perf_counter()
    if probe.returncode == 0:
        argv = [sys.executable, "-m", "galley.cli.main", "--server", server.url, "platform", "import",
                PLATFORM_NAME, "--file", str(source), "--publisher", PLATFORM["publisher"],
                "--offer", PLATFORM["offer"], "--sku", PLATFORM["sku"], "--version", PLATFORM["version"]]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"galley platform import exited with {done.returncode}:\n"
                               f"{(done.stdout + done.stderr)[-2000:]}")
        how = "galley platform import"
    else:
        path = ("/providers/Galley.Platform/publishers/{publisher}/offers/{offer}/skus/{sku}/versions/{version}"
                .format(**PLATFORM))
        with server.client(timeout=STEP_TIMEOUT_S) as client, open(source, "rb") as body:
            response = client.put(path, params={"osType": "Linux", "format": "raw"}, content=body,
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Length": str(source.stat().st_size)})
            _check(response, f"PUT {path}")
            _wait_async(client, response, "platform import", STEP_TIMEOUT_S)
        how = "PUT /providers/Galley.Platform/… (httpx; the CLI has no `platform import`)"
    return {"seconds": time.perf_counter() - started, "how": how}


def parse_phases(text: str) -> tuple[dict | None, dict | None]:
    """The `phases: {json}` line the build worker writes at the end of customization.log
    (seconds per runSubState), and `steps: {json}` if it writes one too."""
    found: dict[str, dict | None] = {"phases": None, "steps": None}
    decoder = json.JSONDecoder()
    for line in text.splitlines():
        for key in found:
            marker = f"{key}: "
            at = line.find(marker)
            if at < 0:
                continue
            try:
                value, _end = decoder.raw_decode(line[at + len(marker):].lstrip())
            except ValueError:
                continue
            if isinstance(value, dict):
                found[key] = value  # the last one wins
    return found["phases"], found["steps"]


def observed_phases(transitions: list[tuple[float, str, str]], end: float) -> dict[str, float]:
    """Seconds per (runState/)runSubState from the transitions seen while polling."""
    durations: dict[str, float] = {}
    for i, (at, state, sub) in enumerate(transitions):
        until = transitions[i + 1][0] if i + 1 < len(transitions) else end
        if state in FINAL_RUN_STATES:
            continue
        key = sub or f"({state})"
        durations[key] = durations.get(key, 0.0) + (until - at)
    return durations


def run_galley(args: argparse.Namespace, source: Path, work: Path) -> dict:
    home = work / f"home-{time.strftime('%Y%m%d-%H%M%S')}"
    server = Server(home)
    result: dict = {"home": str(home), "load_start": loadavg()}
    log(f"galley: starting galley serve (GALLEY_HOME={home}; HTTPS with its own CA, signed in from "
        "its credentials.json)")
    server.start()
    result["server_url"] = server.url
    try:
        log("galley: importing the platform image (not counted)")
        result["import"] = import_platform(server, source)
        log(f"galley: platform image imported in {result['import']['seconds']:.1f} s via {result['import']['how']}")

        group = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}"
        gallery = f"{group}/providers/Microsoft.Compute/galleries/{GALLERY}"
        definition = f"{gallery}/images/{DEFINITION}"
        template = f"{group}/providers/Microsoft.VirtualMachineImages/imageTemplates/{TEMPLATE}"
        gapi = {"api-version": GALLERY_API}
        bapi = {"api-version": BUILDER_API}
        timeout = args.timeout

        with server.client(timeout=120) as client:  # its CA, the administrator's token on every request
            def wait_provisioned(path: str, params: dict, what: str) -> dict:
                deadline = time.monotonic() + 120
                while True:
                    body = _check(client.get(path, params=params), f"GET {what}", ok=(200,)).json()
                    state = body.get("properties", {}).get("provisioningState")
                    if state == "Succeeded":
                        return body
                    if state in ("Failed", "Canceled") or time.monotonic() > deadline:
                        raise RuntimeError(f"{what} is {state}: {json.dumps(body)[:2000]}")
                    time.sleep(0.05)

            marks: dict[str, float] = {}
            t0 = time.perf_counter()
            _check(client.put(group, params={"api-version": RESOURCES_API}, json={"location": REGION}),
                   "PUT resource group", ok=(200, 201))
            _check(client.put(gallery, params=gapi, json={"location": REGION, "properties": {}}), "PUT gallery")
            wait_provisioned(gallery, gapi, "gallery")
            _check(client.put(definition, params=gapi, json={"location": REGION, "properties": {
                "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
                "identifier": {"publisher": "Bench", "offer": "debian-12", "sku": "bench"}}}),
                   "PUT image definition")
            wait_provisioned(definition, gapi, "image definition")
            marks["definition_ready"] = time.perf_counter()
            body = {"location": REGION, "identity": {"type": "None"}, "properties": {
                "source": {"type": "PlatformImage", "publisher": PLATFORM["publisher"],
                           "offer": PLATFORM["offer"], "sku": PLATFORM["sku"], "version": "latest"},
                "customize": [{"type": "Shell", "name": "bench", "inline": customizer_commands(args.package)}],
                "distribute": [{"type": "SharedImage", "galleryImageId": definition,
                                "runOutputName": RUN_OUTPUT, "replicationRegions": [REGION]}],
            }}
            marks["template_put"] = time.perf_counter()
            _check(client.put(template, params=bapi, json=body), "PUT image template")
            wait_provisioned(template, bapi, "image template")
            marks["template_ready"] = time.perf_counter()
            response = _check(client.post(f"{template}/run", params=bapi), "POST run", ok=(200, 202))
            marks["run_accepted"] = time.perf_counter()
            log(f"galley: run accepted (HTTP {response.status_code}); polling every {POLL_S} s")

            transitions: list[tuple[float, str, str]] = []
            last = None
            deadline = time.monotonic() + timeout
            status: dict = {}
            while True:
                got = client.get(template, params=bapi)
                now = time.perf_counter()
                if got.status_code == 200:
                    status = got.json().get("properties", {}).get("lastRunStatus") or {}
                    seen = (status.get("runState", ""), status.get("runSubState", ""))
                    if seen != last:
                        transitions.append((now, *seen))
                        log(f"galley: +{now - marks['run_accepted']:.1f} s runState={seen[0]} "
                            f"runSubState={seen[1] or '-'}")
                        last = seen
                    if seen[0] in FINAL_RUN_STATES:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the run did not finish in {timeout:.0f} s: {status}")
                time.sleep(POLL_S)
            t_end = transitions[-1][0]
            result["run_state"] = status.get("runState")
            result["run_message"] = status.get("message")
            result["last_run_status"] = status
            result["total_seconds"] = t_end - t0
            result["setup_seconds"] = marks["template_put"] - t0
            result["template_seconds"] = marks["run_accepted"] - marks["template_put"]
            result["template_to_end_seconds"] = t_end - marks["template_put"]
            result["run_seconds"] = t_end - marks["run_accepted"]
            result["observed_phases"] = observed_phases(transitions, t_end)
            result["transitions"] = [(round(at - marks["run_accepted"], 2), state, sub)
                                     for at, state, sub in transitions]

            # Not counted: the log, the run output, the image version's replication.
            logs = client.get(f"{template}/logs", params=bapi)
            result["log_status"] = logs.status_code
            if logs.status_code == 200:
                (home / "customization.log").write_text(logs.text)
                result["log_path"] = str(home / "customization.log")
                result["log_phases"], result["log_steps"] = parse_phases(logs.text)
                result["log_tail"] = logs.text.strip().splitlines()[-15:]
            else:
                result["log_phases"] = result["log_steps"] = None
                result["log_error"] = logs.text[:500]
            output = client.get(f"{template}/runOutputs/{RUN_OUTPUT}", params=bapi)
            check: dict = {"run_output_status": output.status_code}
            if output.status_code == 200:
                artifact = output.json().get("properties", {}).get("artifactId")
                check["artifact_id"] = artifact
                if artifact:
                    version = client.get(artifact, params={**gapi, "$expand": "ReplicationStatus"})
                    check["version_status"] = version.status_code
                    if version.status_code == 200:
                        props = version.json().get("properties", {})
                        replication = props.get("replicationStatus") or {}
                        check["provisioning_state"] = props.get("provisioningState")
                        check["replication"] = replication.get("aggregatedState")
                        check["regions"] = {s.get("region"): s.get("state")
                                            for s in replication.get("summary", [])}
            else:
                check["error"] = output.text[:500]
            check["ok"] = (result["run_state"] == "Succeeded" and check.get("replication") == "Completed"
                           and check.get("provisioning_state") == "Succeeded")
            result["check"] = check
            log(f"galley: run {result['run_state']} in {result['total_seconds']:.1f} s; result check: {check}")
    finally:
        server.stop()
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    return result


# ---- 4. the report -------------------------------------------------------------------------------

def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:.1f}"


def report(results: dict) -> str:
    base = results.get("baseline") or {}
    gal = results.get("galley") or {}
    steps = base.get("steps", {})
    phases_log = gal.get("log_phases")
    phases_seen = gal.get("observed_phases") or {}
    phases = phases_log or phases_seen
    source = ("from the build log's `phases:` line" if phases_log else
              "from lastRunStatus.runSubState changes seen while polling every 0.2 s" if phases_seen else "none")
    lines = []
    add = lines.append
    add("Image Builder: Debian 12 platform image, one Shell customizer (write a file, apt-get update, "
        f"install {results['package']}), generalize, distribute to a gallery in one region")
    add(f"machine: {results['cpus']} CPUs, load average (1, 5, 15 min) at start {results['load_start']}, "
        + (f"before the baseline {base['load_start']}, " if base else "")
        + (f"before Galley {gal['load_start']}, " if gal else "")
        + f"at end {results['load_end']}")
    imp = results["platform"]
    add(f"platform image (one-time, not counted): {imp['path']} ({imp['virtual_gib']:.0f} GiB virtual, "
        f"{imp['allocated_mib']:.0f} MiB allocated), "
        + (f"built in {imp['seconds']:.1f} s" if imp["built_now"] else "reused from an earlier run")
        + (f"; imported into Galley in {gal['import']['seconds']:.1f} s via {gal['import']['how']}"
           if gal.get("import") else ""))
    if base:
        add(f"libguestfs warm-up (not counted): {base['warmup_seconds']:.1f} s "
            f"(appliance {'already cached' if base['appliance_was_cached'] else 'built in this run'})")
    add("")
    log_steps = gal.get("log_steps") or {}
    rows = [
        ("setup: group, gallery, definition", gal.get("setup_seconds"), None),
        ("template PUT until Succeeded + POST run", gal.get("template_seconds"), None),
    ]
    if not phases_log and phases_seen:
        rows.append(("run queued / no sub-state", sum(v for k, v in phases_seen.items() if k not in PHASES), None))
    rows += [
        ("Building       | baseline: cp --sparse", phases.get("Building"), steps.get("copy")),
        ("Customizing    | baseline: virt-customize + virt-sysprep", phases.get("Customizing"),
         (steps["customize"] + steps["generalize"]) if "customize" in steps else None),
        ("   customize   | baseline: virt-customize", log_steps.get("customize"), steps.get("customize")),
        ("   generalize  | baseline: virt-sysprep", log_steps.get("generalize"), steps.get("generalize")),
        ("Validating", phases.get("Validating"), None),
        ("Distributing   | baseline: qemu-img convert + sync", phases.get("Distributing"), steps.get("distribute")),
    ]
    rows += [(f"{key} (other run sub-state)", value, None) for key, value in (phases_log or {}).items()
             if key not in PHASES]
    if gal.get("total_seconds") is not None:
        # what the rows above leave out: queueing, the worker's bookkeeping, polling granularity
        shown = sum(g for name, g, _ in rows if g is not None and not name.startswith("   "))
        rows.append(("rest: queue, bookkeeping, polling", gal["total_seconds"] - shown, None))
    width = max(len(r[0]) for r in rows) + 2
    add(f"{'phase':<{width}}{'Galley s':>10}{'baseline s':>12}")
    add("-" * (width + 22))
    for name, g, b in rows:
        add(f"{name:<{width}}{fmt(g):>10}{fmt(b):>12}")
    add("-" * (width + 22))
    g_total, b_total = gal.get("total_seconds"), base.get("total_seconds")
    add(f"{'total':<{width}}{fmt(g_total):>10}{fmt(b_total):>12}")
    add("")
    add(f"Galley phases: {source}")
    if gal.get("log_steps"):
        add("Galley build steps (log): " + ", ".join(f"{k} {v:.1f}" for k, v in gal["log_steps"].items()))
    if gal and gal.get("transitions"):
        add("Galley runState/runSubState seen (s after POST run): "
            + ", ".join(f"{at:.1f} {state}/{sub or '-'}" for at, state, sub in gal["transitions"]))
    if gal:
        add(f"Galley run: {gal.get('run_state')}"
            + (f" ({gal['run_message']})" if gal.get("run_message") else "")
            + f"; total = PUT resource group .. runState final; from PUT template: "
              f"{gal.get('template_to_end_seconds', 0):.1f} s; logs endpoint HTTP {gal.get('log_status')}")
        check = gal.get("check", {})
        add(f"Galley result: runOutput HTTP {check.get('run_output_status')}, artifactId "
            f"{check.get('artifact_id')}, version {check.get('provisioning_state')}, replication "
            f"{check.get('replication')} {check.get('regions', '')} -> {'OK' if check.get('ok') else 'NOT OK'}")
    if base:
        add(f"baseline result: {BENCH_FILE} and /usr/bin/{results['package']} in the published image -> "
            f"{'OK' if base['check']['ok'] else 'NOT OK: ' + base['check']['output']}; distribute = "
            f"convert {base['distribute_convert_seconds']:.1f} s + sync {base['distribute_sync_seconds']:.1f} s")
    if g_total and b_total:
        speedup = b_total / g_total
        add(f"speedup (baseline total / Galley total): {speedup:.2f}x   goal >= {GOAL_SPEEDUP:.0f}x: "
            f"{'met' if speedup >= GOAL_SPEEDUP else 'NOT met'}")
    if g_total:
        add(f"Galley total {g_total:.1f} s   goal < {GOAL_TOTAL_S:.0f} s: "
            f"{'met' if g_total < GOAL_TOTAL_S and gal.get('run_state') == 'Succeeded' else 'NOT met'}")
    for note in results.get("notes", []):
        add(f"note: {note}")
    add("versions: " + "; ".join(f"{k}: {v}" for k, v in results["versions"].items()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="/var/tmp/galley-bench-builder",
                        help="keeps the platform image between runs, and the run's files")
    parser.add_argument("--package", default="tree", help="the package both sides install (default tree)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-galley", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the Galley run")
    parser.add_argument("--keep-home", action="store_true", help="keep Galley's home (server.log, database)")
    parser.add_argument("--keep-images", action="store_true", help="keep the baseline's images")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: building the platform image and Galley's builds need it")

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"package": args.package, "cpus": os.cpu_count(), "load_start": loadavg(), "notes": []}
    source, seconds, built = platform_image(work)
    results["platform"] = {"path": str(source), "seconds": seconds, "built_now": built,
                           "virtual_gib": source.stat().st_size / 1024 ** 3, "allocated_mib": allocated_mib(source)}
    if not args.skip_baseline:
        try:
            results["baseline"] = run_baseline(args, source, work)
        except Exception as error:  # noqa: BLE001 - reported, and Galley's side still runs
            log(f"baseline FAILED: {error}")
            results["notes"].append(f"baseline failed: {str(error)[-1500:]}")
    if not args.skip_galley:
        try:
            results["galley"] = run_galley(args, source, work)
        except Exception as error:  # noqa: BLE001
            log(f"galley FAILED: {error}")
            results["notes"].append(f"Galley failed: {str(error)[:600]}")
    results["load_end"] = loadavg()
    results["versions"] = {
        "virt-customize": first_line(["virt-customize", "--version"]),
        "qemu": first_line(["qemu-system-x86_64", "--version"]),
        "qemu-img": first_line(["qemu-img", "--version"]),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(report(results))
    ok_base = args.skip_baseline or ("baseline" in results and results["baseline"]["check"]["ok"])
    ok_galley = args.skip_galley or ("galley" in results and results["galley"].get("check", {}).get("ok"))
    return 0 if ok_base and ok_galley else 1


if __name__ == "__main__":
    sys.exit(main())
