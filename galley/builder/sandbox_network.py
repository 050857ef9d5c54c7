"""The build sandbox's network: its own namespace, outbound to the internet through slirp4netns,
nothing on the host or its private networks.

The sandbox starts in a new network namespace (`unshare --net`), where only loopback exists.
`Slirp.start(pid)` attaches slirp4netns (Debian package slirp4netns) to it: a tap device
`tap0`, 10.0.2.100/24, default route via 10.0.2.2, DNS at 10.0.2.3. slirp4netns is a
userspace TCP/IP stack: each connection the sandbox opens becomes an ordinary socket that the
slirp4netns process opens on the host. So two things keep the host and its networks out:

  * `--disable-host-loopback`: 10.0.2.2 does not lead to the host's 127.0.0.1;
  * `nft_rules`: an nftables filter in the sandbox's namespace (loaded by its init before the
    command runs; the command has no CAP_NET_ADMIN to change it, nor CAP_NET_RAW to go around it
    with packet sockets) that rejects every packet not for loopback, except to:
      - 10.0.2.3 port 53 (UDP and TCP): slirp4netns relays it to the first nameserver of the
        host's /etc/resolv.conf. This is the one deliberate hole: DNS queries reach the host's
        resolver, whatever address it has (a private one, or the host's own loopback, e.g.
        systemd-resolved's 127.0.0.53), on port 53 only;
      - IPv4 addresses outside `BLOCKED` (loopback, RFC 1918 private, carrier-grade NAT, link
        local and with it 169.254.169.254, "this network", IETF protocol assignments,
        benchmarking, multicast, reserved, broadcast) and outside the host's own addresses and
        the subnets of its interfaces.
    IPv6 is not offered (slirp4netns runs without it) and rejected but for loopback.

So a customizer reaches the package mirrors and the rest of the internet, but not Galley's API,
PostgreSQL, an S3 server or any other service of the host (on any of its addresses), not the
machines of its private networks and not a cloud's metadata service. A mirror or proxy that is
itself on a private network is out of reach too. slirp4netns runs as root on the host and parses
what the sandbox sends: it runs with `--enable-sandbox` (its own mount namespace, capabilities
dropped) and `--enable-seccomp`; it exits when the host closes its exit pipe (also when the
server dies).
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable

TAP = "tap0"
DNS = "10.0.2.3"
SLIRP_NETWORK = "10.0.2.0/24"
MTU = 65520
READY_SECONDS = 10.0
STOP_SECONDS = 5.0
RESOLV_CONF = f"# Galley's build sandbox: DNS through slirp4netns\nnameserver {DNS}\n"
# IPv4 networks that are not the public internet (RFC 6890 and friends).
BLOCKED = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
           "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4")


class SandboxNetworkError(RuntimeError):
    """The sandbox's network could not be set up."""


def host_networks() -> list[str]:
    """The host's IPv4 addresses (as /32) and the subnets of its interfaces, from `ip -j addr`."""
    done = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SandboxNetworkError(f"cannot list the host's addresses (ip -j addr): {done.stderr.strip()}")
    found = []
    for link in json.loads(done.stdout or "[]"):
        for info in link.get("addr_info", []):
            local, length = info.get("local"), info.get("prefixlen")
            if info.get("family") != "inet" or not local:
                continue
            found.append(f"{local}/32")
            if isinstance(length, int):
                found.append(str(ipaddress.ip_network(f"{local}/{length}", strict=False)))
    return found


def blocked_networks(host: Iterable[str]) -> list[str]:
    """BLOCKED and the host's networks, merged into non-overlapping ranges (nft wants them so)."""
    networks = [ipaddress.ip_network(n, strict=False) for n in (*BLOCKED, *host)]
    return [str(n) for n in ipaddress.collapse_addresses(n for n in networks if n.version == 4)]


def nft_rules(blocked: Iterable[str]) -> str:
    """The nftables ruleset the sandbox's init loads into its network namespace."""
    elements = ", ".join(blocked)
    return f"""\
table inet galley_sandbox {{
    set blocked {{
        type ipv4_addr; flags interval;
        elements = {{ {elements} }}
    }}
    chain output {{
        type filter hook output priority 0; policy drop;
        oifname "lo" accept
        ip daddr {DNS} udp dport 53 accept
        ip daddr {DNS} tcp dport 53 accept
        ip daddr @blocked reject with icmpx admin-prohibited
        meta nfproto ipv4 accept
        reject with icmpx admin-prohibited
    }}
}}
"""


def required_tools() -> dict[str, str]:
    """{tool: absolute path} for slirp4netns and nft; SandboxNetworkError naming what is missing."""
    found = {tool: shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/bin")
             for tool in ("slirp4netns", "nft")}
    missing = [f"{tool} (Debian package {'slirp4netns' if tool == 'slirp4netns' else 'nftables'})"
               for tool, path in found.items() if path is None]
    if missing:
        raise SandboxNetworkError(f"the build sandbox's network needs {' and '.join(missing)}")
    return {tool: str(path) for tool, path in found.items()}


class Slirp:
    """slirp4netns attached to the network namespace of process `pid`, until `stop()`."""

    def __init__(self, binary: str):
        self.binary = binary
        self.process: subprocess.Popen | None = None
        self._exit_w: int | None = None
        self._output = None

    def start(self, pid: int) -> None:
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        self._exit_w = exit_w
        self._output = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                [self.binary, "--configure", f"--mtu={MTU}", "--disable-host-loopback", "--enable-sandbox",
                 "--enable-seccomp", f"--cidr={SLIRP_NETWORK}", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
                 str(pid), TAP],
                stdin=subprocess.DEVNULL, stdout=self._output, stderr=self._output, pass_fds=(ready_w, exit_r),
                cwd="/", start_new_session=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            give_up = time.monotonic() + READY_SECONDS
            while True:
                ready, _, _ = select.select([ready_r], [], [], 0.1)
                if ready:
                    if os.read(ready_r, 16):
                        return
                    raise SandboxNetworkError(f"slirp4netns exited before the network was up: {self._tail()}")
                if self.process.poll() is not None:
                    raise SandboxNetworkError(f"slirp4netns exited ({self.process.returncode}) before the network "
                                              f"was up: {self._tail()}")
                if time.monotonic() > give_up:
                    raise SandboxNetworkError(f"slirp4netns did not bring the network up in {READY_SECONDS:.0f} s: "
                                              f"{self._tail()}")
        finally:
            os.close(ready_r)

    def _tail(self) -> str:
        if self._output is None:
            return ""
        self._output.seek(0)
        lines = self._output.read().decode("utf-8", "replace").strip().splitlines()
        return " / ".join(lines[-5:]) or "(no output)"

    def stop(self) -> None:
        """Close the exit pipe (slirp4netns exits), kill it if it does not, and wait for it."""
        if self._exit_w is not None:
            os.close(self._exit_w)
            self._exit_w = None
        if self.process is not None:
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._output is not None:
            self._output.close()
            self._output = None
