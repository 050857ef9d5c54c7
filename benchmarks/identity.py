#!/usr/bin/env python
"""Galley identity benchmark: what authenticating every request costs, each figure beside its baseline.

Run from the repository root:

    python benchmarks/identity.py                   # 10,000 versions (about 2.5 min on 2 CPUs)
    python benchmarks/identity.py --versions 1000   # smaller, quicker
    python benchmarks/identity.py --json            # machine-readable results on stdout

1. In-process GET of one image version (its definition holds N versions) with a bearer token that
   the real Authentication middleware verifies, beside the same GET with that middleware taken out
   of the app's stack (no token): direct ASGI calls and Starlette TestClient, calls interleaved.
2. Loopback throughput of that GET through `galley serve` over HTTPS with a token on every request,
   beside benchmarks/bare_app.py served by uvicorn with the same certificate, and beside
   `galley serve --http` (plain HTTP, a token on every request): the cost of TLS.
3. `POST /{tenant}/oauth2/v2.0/token` (client_credentials, the right secret) over HTTPS, beside its
   parts timed alone in-process: the secret's scrypt check (secrets.verify_secret) and the RS256
   signing of a token (Tokens.issue).

Everything runs on a fresh temporary GALLEY_HOME (SQLite), removed at the end unless --keep-home.
Servers listen on 127.0.0.1 only and are stopped by their own process id; every loop is bounded by
a count and by time. Progress goes to stderr; the table (or the JSON document) to stdout.
See benchmarks/README.md ("Identity") for what each figure means and the goals.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import control_plane as cp  # noqa: E402  (seeding, timing, noise, servers and load generation)
import galley_server  # noqa: E402

GOAL_P99_MS = 5.0
GOAL_RATIO = 0.5
GOAL_TOKEN_P99_MS = 50.0
QUERY = f"api-version={cp.GALLERY_API}"


def log(message: str) -> None:
    cp.log(message)


# ---- 1. in-process ---------------------------------------------------------------------------

def without_authentication(app):
    """The app's own middleware stack with the Authentication middleware taken out (the nodes
    above it are shallow copies re-linked around it; the app itself is left as it is). Lifespan
    messages are answered here, so a TestClient on it does not run the app's lifespan twice."""
    from galley.api.authentication import Authentication

    top = node = copy.copy(app.middleware_stack)
    for _ in range(32):
        child = node.app
        if isinstance(child, Authentication):
            node.app = child.app
            break
        child = copy.copy(child)
        node.app = child
        node = child
    else:
        raise RuntimeError("no Authentication middleware in the app's stack")

    async def bypass(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        scope["app"] = app
        await top(scope, receive, send)

    return bypass


def _scope(path: str, token: str | None) -> dict:
    headers = [(b"host", b"127.0.0.1"), (b"accept", b"application/json")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": QUERY.encode(), "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "state": {}}


async def _asgi_get(app, path: str, token: str | None) -> int:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(_scope(path, token), receive, send)
    return sent[0]["status"]


def interleaved_asgi(cases: dict, path: str, calls: int, warmup: int, budget_s: float) -> dict[str, list[int]]:
    """cases: name -> (asgi app, token or None). Each round calls every case once, in turn. ns per call."""
    async def run() -> dict[str, list[int]]:
        for name, (app, token) in cases.items():
            for _ in range(warmup):
                status = await _asgi_get(app, path, token)
                if status != 200:
                    raise RuntimeError(f"ASGI GET ({name}) -> {status}")
        samples: dict[str, list[int]] = {name: [] for name in cases}
        clock = time.perf_counter_ns
        deadline = time.perf_counter() + budget_s
        for _ in range(calls):
            for name, (app, token) in cases.items():
                start = clock()
                status = await _asgi_get(app, path, token)
                samples[name].append(clock() - start)
                if status != 200:
                    raise RuntimeError(f"ASGI GET ({name}) -> {status} during measurement")
            if time.perf_counter() > deadline:
                break
        return samples

    return asyncio.run(run())


def interleaved_calls(cases: dict, calls: int, warmup: int, budget_s: float) -> dict[str, list[int]]:
    """cases: name -> fn(). Each round calls every case once, in turn. ns per call."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[int]] = {name: [] for name in cases}
    clock = time.perf_counter_ns
    deadline = time.perf_counter() + budget_s
    for _ in range(calls):
        for name, fn in cases.items():
            start = clock()
            fn()
            samples[name].append(clock() - start)
        if time.perf_counter() > deadline:
            break
    return samples


def inprocess(app, client, token: str, versions: int, calls: int, budget_s: float) -> dict:
    from starlette.testclient import TestClient

    target = cp.version_id(versions // 2)
    expected = cp.version_name(versions // 2)
    bypass = without_authentication(app)

    # The comparison is fair only if both sides answer the same thing, and the token is really checked.
    checks = {"with token": asyncio.run(_asgi_get(app, target, token)),
              "no token, real app": asyncio.run(_asgi_get(app, target, None)),
              "no token, Authentication taken out": asyncio.run(_asgi_get(bypass, target, None))}
    if checks != {"with token": 200, "no token, real app": 401, "no token, Authentication taken out": 200}:
        raise RuntimeError(f"unexpected answers: {checks}")
    body = client.get(f"{target}?{QUERY}").json()
    if body.get("name") != expected:
        raise RuntimeError(f"GET {target} answered {body}")

    warmup = min(200, calls)
    log(f"  ASGI: {calls} x (with token, Authentication taken out), interleaved")
    asgi = interleaved_asgi({"asgi_token": (app, token), "asgi_bypass": (bypass, None)},
                            target, calls, warmup, budget_s)
    url = f"{target}?{QUERY}"
    with TestClient(bypass) as bare_client:
        def with_token():
            if client.get(url).status_code != 200:
                raise RuntimeError("TestClient GET with token failed during measurement")

        def bypassed():
            if bare_client.get(url).status_code != 200:
                raise RuntimeError("TestClient GET (Authentication taken out) failed during measurement")

        log(f"  TestClient: {calls} x (with token, Authentication taken out), interleaved")
        http = interleaved_calls({"http_token": with_token, "http_bypass": bypassed}, calls, warmup, budget_s)

    # The middleware's own work, alone: Tokens.verify of the same token (a cache hit, as on every
    # request after a client's first), and of tokens it has not seen (signature check and claims).
    tokens = app.state.tokens
    log(f"  Tokens.verify: {calls} cache hits")
    hits = cp.time_calls(lambda: tokens.verify(token), calls, warmup, budget_s)
    principal = _admin(app)
    fresh = [tokens.issue(principal, None, app.state.settings.public_url + "/")[0] for _ in range(min(calls, 200))]
    log(f"  Tokens.verify: {len(fresh)} tokens never seen before")
    it = iter(fresh)
    misses = cp.time_calls(lambda: tokens.verify(next(it)), len(fresh), 0, budget_s)
    cases = {**asgi, **http, "verify_hit": hits, "verify_miss": misses}
    return {"version": expected, "answers_checked": checks,
            "cases": {name: cp.summarize_ms(samples) for name, samples in cases.items()}}


def _admin(app):
    """The home's administrator (the principal of credentials.json)."""
    creds = galley_server.credentials(app.state.settings.home)
    with app.state.identity_store.read() as tx:
        return tx.principal_by_app_id(creds["clientId"])


def token_parts(app, calls: int, budget_s: float) -> dict:
    """The token endpoint's two deliberate costs, each alone in-process: the scrypt check of the
    right secret against the administrator's stored hash, and Tokens.issue (RS256 signing)."""
    from galley.identity import secrets

    creds = galley_server.credentials(app.state.settings.home)
    principal = _admin(app)
    with app.state.identity_store.read() as tx:
        stored = tx.secrets(principal.id)[0].secret_hash
    if not secrets.verify_secret(creds["clientSecret"], stored):
        raise RuntimeError("the administrator's secret does not match its stored hash")
    tokens = app.state.tokens
    resource = app.state.settings.public_url + "/"
    log(f"  secrets.verify_secret: {calls} calls ({stored.split('$')[0]} n={stored.split('$')[1]} "
        f"r={stored.split('$')[2]} p={stored.split('$')[3]})")
    hash_ns = cp.time_calls(lambda: secrets.verify_secret(creds["clientSecret"], stored), calls, 5, budget_s)
    log(f"  Tokens.issue (RS256): {calls} calls")
    sign_ns = cp.time_calls(lambda: tokens.issue(principal, None, resource), calls, 5, budget_s)
    key = tokens.keys.current().private_key
    return {"hash_params": stored.split("$")[:4], "rsa_bits": key.key_size,
            "cases": {"verify_secret": cp.summarize_ms(hash_ns), "issue": cp.summarize_ms(sign_ns)}}


# ---- 3. the token endpoint over HTTPS --------------------------------------------------------

def token_endpoint(galley: galley_server.Server, calls: int, budget_s: float) -> dict:
    """`calls` sequential POSTs to the token endpoint on one keep-alive HTTPS connection."""
    import httpx

    creds = galley.credentials()
    url = f"{galley.url}/{creds['tenantId']}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": creds["clientId"],
            "client_secret": creds["clientSecret"], "scope": f"{galley.url}/.default"}
    with httpx.Client(verify=galley.verify, timeout=30) as client:
        def one():
            response = client.post(url, data=form)
            if response.status_code != 200 or "access_token" not in response.json():
                raise RuntimeError(f"token endpoint -> {response.status_code}: {response.text[:300]}")
        samples = cp.time_calls(one, calls, min(10, calls), budget_s)
    return cp.summarize_ms(samples)


# ---- report ----------------------------------------------------------------------------------

def goal(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render(results: dict) -> str:
    env, setup, load = results["environment"], results["setup"], results["load_avg"]
    lines = ["Galley identity benchmark: authentication on every request, beside its baseline",
             f"  python {env['python']}, fastapi {env['fastapi']}, starlette {env['starlette']}, "
             f"uvicorn {env['uvicorn']}, {env['cpus']} CPUs, {env['platform']}",
             "  load average (1/5/15 min): start " + " ".join(f"{v:.2f}" for v in load["start"])
             + ", end " + " ".join(f"{v:.2f}" for v in load["end"]),
             f"  {setup['versions']} image versions in one definition (seeded in {setup['versions_s']:.1f} s, "
             f"{setup['versions_per_s']:.0f}/s, as control_plane.py seeds them); SQLite in a fresh GALLEY_HOME",
             ""]

    ip = results["inprocess"]
    cases = ip["cases"]
    lines.append(f"1. In-process GET of version {ip['version']} ({setup['versions']} in its definition), "
                 f"calls interleaved   goal: p99 < {GOAL_P99_MS:g} ms with the token")
    lines.append("   (checked first: with the token 200, without it 401, without it and with Authentication "
                 "taken out 200)")
    lines.append(f"  {'call':<58} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  goal")
    rows = [("asgi_token", "ASGI        app(scope), bearer token verified", True),
            ("asgi_bypass", "  baseline  same stack, Authentication taken out, no token", False),
            ("http_token", "TestClient  GET, bearer token verified", True),
            ("http_bypass", "  baseline  same stack, Authentication taken out, no token", False),
            ("verify_hit", "alone       Tokens.verify, the same token (cache hit)", False),
            ("verify_miss", "alone       Tokens.verify, a token never seen (RS256 check)", False)]
    for key, label, judged in rows:
        c = cases[key]
        mark = goal(c["p99_ms"] < GOAL_P99_MS) if judged else ("(baseline)" if "baseline" in label else "(info)")
        lines.append(f"  {label:<58} {c['calls']:>6} {c['p50_ms']:>8.3f} {c['p90_ms']:>8.3f} {c['p99_ms']:>8.3f} "
                     f"{c['max_ms']:>8.2f}  {mark}")
    for mode in ("asgi", "http"):
        delta = cases[f"{mode}_token"]["p50_ms"] - cases[f"{mode}_bypass"]["p50_ms"]
        lines.append(f"  authentication's cost at p50, {'ASGI' if mode == 'asgi' else 'TestClient'}: "
                     f"{1000 * delta:+.0f} us per request")
    lines.append("")

    tp = results["throughput"]
    lines.append(f"2. Loopback throughput, GET of that version ({tp['loadgen']}, {tp['connections']} connections, "
                 f"{tp['duration_s']} s x {tp['rounds']} rounds interleaved, one uvicorn process each)   "
                 f"goal: Galley HTTPS / bare HTTPS >= {GOAL_RATIO:g}")
    lines.append(f"  {'server':<58} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  rounds req/s")
    labels = {"bare_https": "baseline  bare FastAPI GET /ping, HTTPS (Galley's certificate)",
              "galley_https": "Galley    galley serve, HTTPS, bearer token on every request",
              "galley_http": "Galley    galley serve --http, bearer token on every request"}
    for name, label in labels.items():
        entry = tp["servers"][name]
        last = entry["rounds"][-1]
        bad = sum(r["non_2xx"] + r["socket_errors"] for r in entry["rounds"])
        rounds = ", ".join(f"{r['requests_per_s']:.0f}" for r in entry["rounds"])
        lines.append(f"  {label:<58} {entry['requests_per_s']:>9.0f} {last.get('p50_ms', float('nan')):>8.2f} "
                     f"{last.get('p99_ms', float('nan')):>8.2f} {bad:>7}  {rounds}")
    lines.append(f"  {'ratio Galley HTTPS / bare HTTPS (medians)':<58} {tp['ratio']:>9.2f}{'':>34}  "
                 f"{goal(tp['ratio'] >= GOAL_RATIO)}")
    lines.append(f"  {'ratio Galley HTTPS / Galley plain HTTP: the cost of TLS':<58} {tp['tls_ratio']:>9.2f}"
                 f"{'':>34}  (info)")
    per_request_ms = 1000.0 / tp["servers"]["galley_https"]["requests_per_s"] if tp["servers"]["galley_https"]["requests_per_s"] else float("nan")
    auth_ms = cases["asgi_token"]["p50_ms"] - cases["asgi_bypass"]["p50_ms"]
    lines.append(f"  the token's cost (section 1, ASGI p50) is {1000 * auth_ms:.0f} us of the {1000 * per_request_ms:.0f} us "
                 "of server time per request that Galley HTTPS's rate allows")
    lines.append("")

    te, parts = results["token_endpoint"], results["token_parts"]
    n, r, p = parts["hash_params"][1:4]
    lines.append(f"3. POST /{{tenant}}/oauth2/v2.0/token, client_credentials with the right secret   "
                 f"goal: p99 < {GOAL_TOKEN_P99_MS:g} ms")
    lines.append(f"  {'call':<58} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  goal")
    for entry, label, mark in (
            (te, "token endpoint over HTTPS (galley serve, keep-alive httpx)",
             goal(te["p99_ms"] < GOAL_TOKEN_P99_MS)),
            (parts["cases"]["verify_secret"], f"alone  secrets.verify_secret (scrypt n={n} r={r} p={p})", "(part)"),
            (parts["cases"]["issue"], f"alone  Tokens.issue (RS256 signing, {parts['rsa_bits']}-bit key)", "(part)")):
        lines.append(f"  {label:<58} {entry['calls']:>6} {entry['p50_ms']:>8.3f} {entry['p90_ms']:>8.3f} "
                     f"{entry['p99_ms']:>8.3f} {entry['max_ms']:>8.2f}  {mark}")
    rest = te["p50_ms"] - parts["cases"]["verify_secret"]["p50_ms"] - parts["cases"]["issue"]["p50_ms"]
    lines.append(f"  at p50 the hash is {100 * parts['cases']['verify_secret']['p50_ms'] / te['p50_ms']:.0f}% of a "
                 f"sign-in, the signing {100 * parts['cases']['issue']['p50_ms'] / te['p50_ms']:.0f}%, the rest "
                 f"(HTTP, TLS, form, database read, JSON) {rest:.1f} ms")
    lines.append("")

    lines.append("Noise: CPU used by other processes during each phase (average cores busy outside this "
                 f"benchmark; {env['cpus']} CPUs), and the 1-min load average at its start")
    lines.append("  " + ", ".join(f"{name} {e['other_cpu_cores']:.2f} cores (load {e['load_avg_1m_at_start']:.2f})"
                                  for name, e in results["noise"].items()))
    if any(e["other_cpu_cores"] > 0.25 for e in results["noise"].values()):
        lines.append("  WARNING: other processes were busy during the run; tails and throughput are pessimistic. "
                     "Re-run on a quiet machine for reference figures.")
    lines.append("")
    lines.append(f"  {'goal':<62} {'measured':>10} {'baseline':>10}  result")
    for g in results["goals"]:
        lines.append(f"  {g['name']:<62} {g['measured']:>10} {g['baseline']:>10}  {goal(g['ok'])}")
    lines.append(f"  total run {results['wall_s']:.0f} s")
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Galley identity benchmark (see benchmarks/README.md).")
    parser.add_argument("--versions", type=int, default=10_000, help="image versions in the definition (default 10000)")
    parser.add_argument("--snapshots", type=int, default=100, help="source snapshots for seeding (default 100)")
    parser.add_argument("--calls", type=int, default=2_000, help="calls per in-process case (default 2000)")
    parser.add_argument("--token-calls", type=int, default=200,
                        help="sequential token requests, and calls of each part alone (default 200)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per throughput run (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per server (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved throughput rounds (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk if installed (auto), or a Python process")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary GALLEY_HOME")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.versions < 1 or args.snapshots < 1 or args.calls < 1 or args.token_calls < 1:
        raise SystemExit("--versions, --snapshots, --calls and --token-calls must be at least 1")
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    elif loadgen == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk), or use --loadgen python")

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from starlette.testclient import TestClient

    from galley.api.app import create_app
    from galley.config import load_settings

    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="galley-bench-identity-"))
    log_dir = home / "logs"
    log_dir.mkdir()
    log(f"GALLEY_HOME={home}")
    for name in [k for k in os.environ if k.startswith("GALLEY_")]:
        del os.environ[name]
    os.environ["GALLEY_HOME"] = str(home)
    settings = replace(load_settings(), home=home, database_url=f"sqlite:///{home / 'galley.db'}",
                       default_subscription_id=cp.SUBSCRIPTION)
    results: dict = {"environment": cp.environment(settings.page_size), "noise": {},
                     "load_avg": {"start": os.getloadavg()}}
    noise = results["noise"]
    servers: list = []
    try:
        app = create_app(settings, run_worker=False)
        with TestClient(app) as client:
            token = galley_server.inprocess_token(client, home, settings.public_url)
            client.headers["Authorization"] = f"Bearer {token}"
            log(f"seeding {args.versions} versions")
            with cp.Phase("setup", noise):
                results["setup"] = cp.seed(client, app, args.versions, args.snapshots, relaxed_sync=True)
            log(f"  done in {results['setup']['versions_s']:.1f} s")
            log("1. in-process GET version, with the token and with Authentication taken out")
            with cp.Phase("in-process", noise):
                results["inprocess"] = inprocess(app, client, token, args.versions, args.calls, budget_s=60)
            log("3. the token endpoint's parts, alone")
            with cp.Phase("token parts", noise):
                results["token_parts"] = token_parts(app, args.token_calls, budget_s=30)
        del app, client

        log("2. starting galley serve (HTTPS), galley serve --http and the bare app (HTTPS)")
        galley = galley_server.Server(home, log_path=log_dir / "galley-https.log").start()
        servers.append(galley)
        plain = galley_server.Server(home, http=True, log_path=log_dir / "galley-http.log").start()
        servers.append(plain)
        bare = cp.start_bare(log_dir, cp.galley_tls(home))
        servers.append(bare)
        path = f"{cp.version_id(args.versions // 2)}?{QUERY}"
        for server in (galley, plain):
            with server.client(timeout=30) as check:
                answer = check.get(path)
                if answer.status_code != 200:
                    raise RuntimeError(f"{server.url}: GET {path} -> {answer.status_code}: {answer.text[:300]}")
        targets = {"bare_https": cp.Target(bare.url + "/ping", cafile=bare.tls[2]),
                   "galley_https": cp.Target(galley.url + path, galley.headers(), str(galley.ca_file)),
                   "galley_http": cp.Target(plain.url + path, plain.headers())}
        log(f"2. throughput with {loadgen}")
        with cp.Phase("throughput", noise):
            runs = cp.interleaved(targets, loadgen, args.duration, args.warmup, args.connections,
                                  args.threads, args.rounds)
        results["throughput"] = {
            "loadgen": loadgen, "connections": args.connections, "duration_s": args.duration,
            "rounds": args.rounds, "servers": runs,
            "ratio": runs["galley_https"]["requests_per_s"] / runs["bare_https"]["requests_per_s"],
            "tls_ratio": runs["galley_https"]["requests_per_s"] / runs["galley_http"]["requests_per_s"],
            "galley_started_with": [galley.started_with, plain.started_with]}
        bare.stop()
        plain.stop()
        time.sleep(1)
        log(f"3. {args.token_calls} sequential token requests over HTTPS")
        with cp.Phase("token endpoint", noise):
            results["token_endpoint"] = token_endpoint(galley, args.token_calls, budget_s=60)
    finally:
        for server in reversed(servers):
            server.stop()
        if args.keep_home:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    results["load_avg"]["end"] = os.getloadavg()
    results["wall_s"] = time.perf_counter() - started

    cases = results["inprocess"]["cases"]
    tp = results["throughput"]
    te = results["token_endpoint"]
    results["goals"] = [
        {"name": f"in-process GET version with token, ASGI, p99 < {GOAL_P99_MS:g} ms",
         "measured": f"{cases['asgi_token']['p99_ms']:.2f} ms", "baseline": f"{cases['asgi_bypass']['p99_ms']:.2f} ms",
         "ok": cases["asgi_token"]["p99_ms"] < GOAL_P99_MS},
        {"name": f"in-process GET version with token, TestClient, p99 < {GOAL_P99_MS:g} ms",
         "measured": f"{cases['http_token']['p99_ms']:.2f} ms", "baseline": f"{cases['http_bypass']['p99_ms']:.2f} ms",
         "ok": cases["http_token"]["p99_ms"] < GOAL_P99_MS},
        {"name": f"HTTPS req/s, Galley with token / bare FastAPI >= {GOAL_RATIO:g}",
         "measured": f"{tp['servers']['galley_https']['requests_per_s']:.0f}/s",
         "baseline": f"{tp['servers']['bare_https']['requests_per_s']:.0f}/s", "ok": tp["ratio"] >= GOAL_RATIO},
        {"name": f"token endpoint over HTTPS, p99 < {GOAL_TOKEN_P99_MS:g} ms",
         "measured": f"{te['p99_ms']:.1f} ms",
         "baseline": f"{results['token_parts']['cases']['verify_secret']['p99_ms']:.1f} ms",
         "ok": te["p99_ms"] < GOAL_TOKEN_P99_MS},
    ]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
