"""The NoCloud seed disk (galley.compute.seed) and, in a booted guest, Galley's provisioning agent
and galley-deprovision (galley.builder.provisioning, baked in by galley.builder.debian)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from galley.builder.boot import boot_test
from galley.builder.provisioning import RESERVED_ADMIN_USERNAMES, admin_username_problem
from galley.compute.seed import EMPTY_CLOUD_CONFIG, make_seed
from galley.domain.virtual_machine import hash_password

from .debian_base import debian_base_image

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGalleyTestKeyGalleyTestKeyGalleyTestKey01 alice@laptop"
CUSTOM_SCRIPT = b"#!/bin/sh\necho \"custom data ran as $(id -un)\" > /opt/custom-marker\necho hello from customData\n"


def _mtools(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def _read(seed: Path, name: str) -> str:
    return _mtools("mtype", "-i", str(seed), f"::{name}")


def _needs(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian: dosfstools mtools openssl)")


# --------------------------------------------------------------------------- fast: the seed itself

def test_seed_holds_the_nocloud_files_and_galleys_own(tmp_path):
    _needs("mkfs.vfat", "mcopy", "mtype", "openssl", "blkid")
    password_hash = hash_password("Correct horse 1!")
    seed = make_seed(tmp_path / "seed.img", instance_id="vm-0f3a", hostname="web01", admin_username="alice",
                     ssh_public_keys=[KEY + "\r\n"], password_hash=password_hash, custom_data=CUSTOM_SCRIPT)

    assert seed.stat().st_mode & 0o777 == 0o600
    probe = subprocess.run(["blkid", "-p", "-o", "export", str(seed)], capture_output=True, text=True).stdout
    assert "LABEL=CIDATA" in probe and "TYPE=vfat" in probe
    assert _read(seed, "meta-data") == "instance-id: vm-0f3a\nlocal-hostname: web01\n"
    assert _read(seed, "user-data").encode() == CUSTOM_SCRIPT
    vendor = _read(seed, "vendor-data")
    assert vendor.startswith("#cloud-config\n")
    assert '"name": "alice"' in vendor and KEY in vendor and password_hash in vendor
    assert _read(seed, "galley/admin-username") == "alice\n"
    assert _read(seed, "galley/authorized_keys") == KEY + "\n"
    assert _read(seed, "galley/password-hash") == password_hash + "\n"
    assert _read(seed, "galley/custom-data").encode() == CUSTOM_SCRIPT
    assert b"Correct horse" not in seed.read_bytes()


def test_seed_without_password_or_custom_data(tmp_path):
    _needs("mkfs.vfat", "mcopy", "mdir")
    seed = make_seed(tmp_path / "seed.img", instance_id="vm-1", hostname="box", admin_username="bob",
                     ssh_public_keys=[KEY])
    assert _read(seed, "user-data").encode() == EMPTY_CLOUD_CONFIG
    listing = _mtools("mdir", "-b", "-i", str(seed), "::/galley")
    assert "admin-username" in listing and "authorized_keys" in listing
    assert "password-hash" not in listing and "custom-data" not in listing
    assert '"lock_passwd": true' in _read(seed, "vendor-data")


@pytest.mark.parametrize("change, message", [
    ({"admin_username": "root"}, "reserved"),
    ({"admin_username": "Alice"}, "lowercase"),
    ({"admin_username": "x;rm -rf /"}, "lowercase"),
    ({"hostname": "web_01"}, "host name"),
    ({"hostname": "-web"}, "host name"),
    ({"instance_id": "a b"}, "instance_id"),
    ({"ssh_public_keys": ['command="sh" ' + KEY]}, "public key"),
    ({"ssh_public_keys": [KEY + "\nssh-rsa AAAA x"]}, "public key"),
    ({"password_hash": "plaintext"}, "crypt"),
])
def test_bad_seed_values_are_refused_before_anything_is_written(tmp_path, change, message):
    values = dict(instance_id="vm-1", hostname="box", admin_username="bob", ssh_public_keys=[KEY])
    values.update(change)
    with pytest.raises(ValueError, match=message):
        make_seed(tmp_path / "seed.img", **values)
    assert list(tmp_path.iterdir()) == []


def test_hash_password_is_sha512_crypt_of_the_password():
    _needs("openssl")
    hashed = hash_password("Correct horse 1!")
    salt = hashed.split("$")[2]
    assert hashed.startswith("$6$") and hashed != hash_password("Correct horse 1!")  # salted
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input="Correct horse 1!\n",
                           capture_output=True, text=True).stdout.strip()
    assert again == hashed
    with pytest.raises(ValueError):
        hash_password("two\nlines")


def test_admin_username_rules():
    assert admin_username_problem("azureuser") is None
    assert admin_username_problem("a" * 32) is None
    assert admin_username_problem("a" * 33)
    assert admin_username_problem("9lives")
    assert all(admin_username_problem(name) for name in ("admin", "root", "sshd", "daemon"))
    assert "support_388945a0" in RESERVED_ADMIN_USERNAMES


# --------------------------------------------------------------------------- slow: a booted guest

QGA_PORT = ["-device", "virtio-serial-pci,id=vser0", "-chardev", "null,id=qga0",
            "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0"]

INSPECT = r"""
say() { echo "$1=$2"; }
say hostname "$(hostname)"
say etc_hostname "$(cat /etc/hostname)"
say hosts "$(grep '^127.0.1.1' /etc/hosts | tr '\t' ' ')"
say id "$(id alice 2>&1)"
say home "$(stat -c '%U %a' /home/alice 2>&1)"
say ssh_dir "$(stat -c '%U:%G %a' /home/alice/.ssh 2>&1)"
say keys_mode "$(stat -c '%U:%G %a' /home/alice/.ssh/authorized_keys 2>&1)"
say keys "$(cat /home/alice/.ssh/authorized_keys 2>&1)"
say sudo "$(runuser -u alice -- sudo -n id -un 2>&1)"
say shadow "$(getent shadow alice | cut -d: -f2)"
say machine_id "$(cat /etc/machine-id)"
say host_keys "$(ls /etc/ssh/ | grep -c '^ssh_host_.*_key$')"
say host_key "$(ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub 2>&1 | cut -d' ' -f2)"
say custom_marker "$(cat /opt/custom-marker 2>&1)"
say custom_data_mode "$(stat -c '%a' /var/lib/galley/custom-data 2>&1)"
say instance_id "$(cat /var/lib/galley/instance-id 2>&1)"
say provisioned "$(cat /var/lib/galley/provisioned-users 2>&1 | tr '\n' ' ')"
say units "$(systemctl is-active galley-provision ssh qemu-guest-agent galley-custom-data | tr '\n' ' ')"
"""


def _values(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if re.match(r"^[a-z_]+=", line))


@pytest.mark.slow
def test_the_agent_provisions_a_guest_and_galley_deprovision_undoes_it(tmp_path):
    _needs("mkfs.vfat", "mcopy", "qemu-img")
    base = debian_base_image()
    disk = tmp_path / "os.qcow2"  # the guest writes here; the cached base stays untouched
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(disk)], check=True)
    password_hash = hash_password("Correct horse 1!")
    seed = make_seed(tmp_path / "seed.img", instance_id="vm-first", hostname="galley-vm1", admin_username="alice",
                     ssh_public_keys=[KEY], password_hash=password_hash, custom_data=CUSTOM_SCRIPT)

    def boot(script: str, seed_image: Path):
        result = boot_test(disk, script, fmt="qcow2", timeout=400, snapshot=False,
                           extra_drives=[(seed_image, "raw")], qemu_args=QGA_PORT)
        assert result.exit_code == 0, result.output + "\n" + result.serial_log[-4000:]
        return result

    first = boot(INSPECT, seed)
    got = _values(first.output)
    assert got["hostname"] == got["etc_hostname"] == "galley-vm1"
    assert got["hosts"] == "127.0.1.1 galley-vm1"
    assert "(sudo)" in got["id"] and "uid=1000(alice)" in got["id"]
    assert got["home"].startswith("alice ")
    assert got["ssh_dir"] == "alice:alice 700" and got["keys_mode"] == "alice:alice 600"
    assert got["keys"] == KEY
    assert got["sudo"] == "root"  # passwordless sudo
    assert got["shadow"] == password_hash
    assert re.fullmatch(r"[0-9a-f]{32}", got["machine_id"])
    assert got["host_keys"] == "3" and got["host_key"].startswith("SHA256:")
    assert got["custom_marker"] == "custom data ran as root"
    assert got["custom_data_mode"] == "600"
    assert got["instance_id"] == "vm-first" and got["provisioned"] == "alice "
    assert got["units"] == "active active active active ", got["units"]
    console = first.serial_log
    assert "galley-provision: made SSH host keys" in console
    assert "galley-provision: created admin user alice (group sudo)" in console
    assert "galley-provision: customData: hello from customData" in console
    assert "galley-provision: instance vm-first provisioned" in console
    assert "Correct horse" not in console

    # Second boot, same seed: nothing is provisioned again; then deprovision the live guest.
    second = boot(INSPECT + "echo ---deprovision---\ngalley-deprovision +user\necho ---after---\n" + r"""
say user "$(id alice 2>&1 | head -c 40)"
say home_left "$(ls -d /home/alice 2>&1 | head -c 60)"
say sudoers_left "$(ls /etc/sudoers.d/)"
say machine_id_size "$(stat -c %s /etc/machine-id)"
say dbus_id "$(test -L /var/lib/dbus/machine-id && readlink /var/lib/dbus/machine-id || cat /var/lib/dbus/machine-id 2>&1 | head -c 60)"
say host_keys_left "$(ls /etc/ssh/ | grep -c '^ssh_host_')"
say state_left "$(ls /var/lib/galley/ | tr '\n' ' ')"
say journal_left "$(find /var/log/journal -type f | wc -l)"
""", seed)
    got2 = _values(second.output.split("---after---")[1])
    before = _values(second.output.split("---deprovision---")[0])
    assert before["machine_id"] == got["machine_id"] and before["host_key"] == got["host_key"]
    assert "galley-provision: instance vm-first is already provisioned" in second.serial_log
    assert second.serial_log.count("galley-provision: customData: hello") == 0
    deprovision_log = second.output.split("---deprovision---")[1]
    assert "deleted user alice" in deprovision_log and "galley-deprovision: done (exit code 0)" in deprovision_log
    assert "no such user" in got2["user"]
    assert "No such file" in got2["home_left"]
    assert "90-galley-alice" not in got2["sudoers_left"]
    assert got2["machine_id_size"] == "0"
    # D-Bus's copy is gone, or is Debian's link to the emptied /etc/machine-id
    assert "No such file" in got2["dbus_id"] or got2["dbus_id"] == "/etc/machine-id"
    assert got2["host_keys_left"] == "0"
    assert got2["state_left"].strip() == ""  # instance id, customData and the user list are gone
    assert got2["journal_left"] == "0"

    # Third boot, a new VM from the deprovisioned disk: a new identity from a new seed.
    seed2 = make_seed(tmp_path / "seed2.img", instance_id="vm-second", hostname="galley-vm2", admin_username="bob",
                      ssh_public_keys=[KEY])
    third = boot(INSPECT.replace("alice", "bob") + 'say old_user "$(id alice 2>&1 | head -c 40)"\n', seed2)
    got3 = _values(third.output)
    assert got3["hostname"] == "galley-vm2" and got3["instance_id"] == "vm-second"
    assert "(sudo)" in got3["id"] and got3["keys"] == KEY and got3["sudo"] == "root"
    assert got3["shadow"].startswith("!")  # no password given: locked, SSH keys only
    assert re.fullmatch(r"[0-9a-f]{32}", got3["machine_id"]) and got3["machine_id"] != got["machine_id"]
    assert got3["host_keys"] == "3" and got3["host_key"] != got["host_key"]
    assert "no such user" in got3["old_user"]
    assert "No such file" in got3["custom_marker"] or got3["custom_marker"] == "custom data ran as root"
    assert "No such file" in got3["custom_data_mode"]  # this VM has no customData


@pytest.mark.slow
def test_without_a_seed_the_agent_only_makes_host_keys(tmp_path):
    base = debian_base_image()
    result = boot_test(base, INSPECT, timeout=400)  # snapshot=on: the cached base is not written
    assert result.exit_code == 0, result.output + "\n" + result.serial_log[-4000:]
    got = _values(result.output)
    assert got["host_keys"] == "3"
    assert "no such user" in got["id"]
    assert got["hostname"] == "debian"
    assert "No such file" in got["instance_id"]
    assert "galley-provision: no seed disk" in result.serial_log
    assert got["units"].split()[:2] == ["active", "active"]  # the agent and sshd
