"""Galley's provisioning agent and `galley-deprovision`: the files baked into images Galley builds.

The agent is the guest's half of a VM's osProfile, for images without cloud-init. On every boot
`galley-provision.service` (a oneshot ordered before ssh.service) runs /usr/local/sbin/galley-provision:

- it makes the SSH host keys that are missing (`ssh-keygen -A`): generalized images carry none;
- it looks for a filesystem labelled CIDATA (or cidata) — the NoCloud seed disk that
  galley.compute.seed writes — mounts it read-only and reads `meta-data`'s instance-id. When that
  differs from /var/lib/galley/instance-id, this is a new VM: it sets the hostname
  (`local-hostname`), creates the admin user from `galley/admin-username` (in group sudo, with a
  NOPASSWD sudoers file), installs `galley/authorized_keys`, sets `galley/password-hash` (or leaves
  the password locked), keeps `galley/custom-data` in /var/lib/galley/custom-data (0600) and, when it
  starts with `#!`, has galley-custom-data.service run it once after the network is up. The
  instance id is written last, so a boot that failed halfway provisions again.

Everything it does is printed with the prefix `galley-provision:` to the journal and the serial
console. The seed is untrusted text handled by root: every value is checked against a pattern
before use and nothing from it is evaluated, except the customData script, which is the user's
explicit request.

`galley-deprovision [+user]` is the guest's half of `az vm generalize` (as `waagent
-deprovision+user`): it runs the same deprovisioning as Image Builder's generalize step
(galley.builder.generalize), on the live system, and with `+user` first deletes the users the
agent provisioned (listed in /var/lib/galley/provisioned-users) with their homes.
"""
from __future__ import annotations

import re

from ..domain.virtual_machine import ADMIN_USERNAME_PATTERN, RESERVED_USERNAMES
from .generalize import DEFAULT_DEPROVISIONING_SHELL

# ---------------------------------------------------------------- the seed's contract
SEED_LABEL = "CIDATA"
META_DATA = "meta-data"
USER_DATA = "user-data"
VENDOR_DATA = "vendor-data"
ADMIN_USERNAME_FILE = "galley/admin-username"
AUTHORIZED_KEYS_FILE = "galley/authorized_keys"
PASSWORD_HASH_FILE = "galley/password-hash"
CUSTOM_DATA_FILE = "galley/custom-data"

# The admin user's rules are the VM resource's (refused there before anything is recorded).
RESERVED_ADMIN_USERNAMES = RESERVED_USERNAMES
HOSTNAME_PATTERN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
INSTANCE_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
PASSWORD_HASH_PATTERN = re.compile(r"\$(1|5|6|y|2b|2y)\$[^:\s]{1,512}")
AUTHORIZED_KEY_PATTERN = re.compile(r"(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
                                    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]+( [^\r\n]*)?")


def admin_username_problem(name: str) -> str | None:
    """Why `name` cannot be a VM's admin user (None when it can): the agent applies the same rules."""
    if not ADMIN_USERNAME_PATTERN.fullmatch(name):
        return ("an admin username is 1 to 32 characters: lowercase letters, digits, '-' and '_', "
                "starting with a letter")
    if name in RESERVED_ADMIN_USERNAMES:
        return f"'{name}' is a reserved name and cannot be an admin username"
    return None


# ---------------------------------------------------------------- files in the image
AGENT_PATH = "usr/local/sbin/galley-provision"
AGENT_UNIT_NAME = "galley-provision.service"
CUSTOM_DATA_UNIT_NAME = "galley-custom-data.service"
DEPROVISION_PATH = "usr/local/sbin/galley-deprovision"
DEPROVISION_LIB_PATH = "usr/local/lib/galley/deprovision.sh"
LOG_PREFIX = "galley-provision:"

AGENT_UNIT = f"""\
[Unit]
Description=Galley provisioning agent (SSH host keys; hostname, admin user, SSH keys from a CIDATA seed)
After=local-fs.target
Before=ssh.service systemd-user-sessions.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/{AGENT_PATH}
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""

CUSTOM_DATA_UNIT = f"""\
[Unit]
Description=Galley: run the VM's customData script once, after the network is up
ConditionPathExists=/var/lib/galley/custom-data.pending
After={AGENT_UNIT_NAME} network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/{AGENT_PATH} --run-custom-data
TimeoutStartSec=infinity
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""

_RESERVED_WORDS = " ".join(sorted(RESERVED_ADMIN_USERNAMES))

AGENT_SCRIPT = r"""#!/bin/sh
# Galley's provisioning agent: see galley/builder/provisioning.py in Galley's source.
# Seed values are checked against patterns; nothing read from the seed is evaluated except the
# customData script, run (once) by `galley-provision --run-custom-data`.
set -u
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
STATE=/var/lib/galley
MOUNT=/run/galley-seed
RESERVED=" @RESERVED@ "

say() { printf 'galley-provision: %s\n' "$*"; }
matches() { printf '%s' "$2" | grep -Eqx -- "$1"; }

run_custom_data() {
    pending=$STATE/custom-data.pending
    [ -f "$pending" ] || return 0
    rm -f "$pending"
    [ -f "$STATE/custom-data" ] || return 0
    # Not in /run or /tmp: they may be mounted noexec.
    script=$(mktemp "$STATE/custom-data.run.XXXXXX") || return 1
    cp "$STATE/custom-data" "$script" && chmod 0700 "$script"
    say "running the customData script"
    codefile=$script.code
    { "$script" </dev/null 2>&1; echo $? > "$codefile"; } | sed -u 's/^/galley-provision: customData: /'
    code=$(cat "$codefile" 2>/dev/null || echo 1)
    rm -f "$script" "$codefile"
    say "the customData script exited with code $code"
    [ "$code" = 0 ]
}

if [ "${1:-}" = "--run-custom-data" ]; then
    run_custom_data
    exit $?
fi

if command -v ssh-keygen >/dev/null 2>&1; then
    missing=
    for kind in rsa ecdsa ed25519; do
        [ -s "/etc/ssh/ssh_host_${kind}_key" ] || missing="$missing $kind"
    done
    if [ -n "$missing" ]; then
        ssh-keygen -A >/dev/null && say "made SSH host keys:$missing"
        for key in /etc/ssh/ssh_host_*_key.pub; do
            [ -f "$key" ] && say "SSH host key $(ssh-keygen -l -f "$key")"
        done
    fi
fi

device=
for label in CIDATA cidata; do
    device=$(blkid -c /dev/null -o device -t "LABEL=$label" 2>/dev/null | head -n 1)
    [ -n "$device" ] && break
done
if [ -z "$device" ]; then
    say "no seed disk (no filesystem labelled CIDATA): nothing to provision"
    exit 0
fi
mkdir -p "$MOUNT"
if ! mount -o ro,nosuid,nodev,noexec "$device" "$MOUNT"; then
    say "cannot mount the seed disk $device"
    exit 1
fi
trap 'umount "$MOUNT" 2>/dev/null; rmdir "$MOUNT" 2>/dev/null' EXIT

# The first "key: value" line of meta-data, without quotes and carriage returns.
meta() {
    sed -n "s/^$1:[[:space:]]*//p" "$MOUNT/meta-data" 2>/dev/null | head -n 1 | tr -d '\r' \
        | sed "s/[[:space:]]*\$//; s/^[\"']//; s/[\"']\$//"
}
first_line() { head -n 1 "$1" 2>/dev/null | tr -d '\r\n'; }

instance_id=$(meta instance-id)
if ! matches '[A-Za-z0-9._:-]{1,128}' "$instance_id"; then
    say "the seed on $device has no usable instance-id in meta-data: nothing provisioned"
    exit 1
fi
if [ "$(first_line "$STATE/instance-id")" = "$instance_id" ]; then
    say "instance $instance_id is already provisioned"
    exit 0
fi
say "provisioning instance $instance_id from $device"
mkdir -p "$STATE" && chmod 0755 "$STATE"
failed=0

hostname=$(meta local-hostname)
if [ -z "$hostname" ]; then
    :
elif matches '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*' "$hostname" \
        && [ ${#hostname} -le 253 ]; then
    short=${hostname%%.*}
    printf '%s\n' "$hostname" > /etc/hostname
    names=$hostname
    [ "$short" != "$hostname" ] && names="$hostname $short"
    if grep -q '^127\.0\.1\.1[[:space:]]' /etc/hosts 2>/dev/null; then
        sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1\t$names/" /etc/hosts
    else
        printf '127.0.1.1\t%s\n' "$names" >> /etc/hosts
    fi
    hostname "$hostname"
    say "hostname set to $hostname"
else
    say "refusing local-hostname '$hostname': not a valid host name"
    failed=1
fi

user=$(first_line "$MOUNT/galley/admin-username")
if [ -n "$user" ]; then
    if ! matches '[a-z][a-z0-9_-]{0,31}' "$user"; then
        say "refusing admin username '$user': 1-32 lowercase letters, digits, - and _, starting with a letter"
        user=; failed=1
    elif case $RESERVED in *" $user "*) true;; *) false;; esac; then
        say "refusing admin username '$user': a reserved name"
        user=; failed=1
    elif uid=$(id -u "$user" 2>/dev/null) && [ "$uid" -lt 1000 ]; then
        say "refusing admin username '$user': a system account"
        user=; failed=1
    fi
fi
if [ -n "$user" ]; then
    if id -u "$user" >/dev/null 2>&1; then
        usermod -a -G sudo "$user" && say "admin user $user exists; added to group sudo"
    else
        useradd -m -s /bin/bash -G sudo "$user" && say "created admin user $user (group sudo)" || failed=1
    fi
fi
if [ -n "$user" ] && id -u "$user" >/dev/null 2>&1; then
    group=$(id -gn "$user")
    home=$(getent passwd "$user" | cut -d: -f6)
    if [ -f "$MOUNT/galley/authorized_keys" ] && [ -d "$home" ] && [ ! -L "$home" ]; then
        [ -L "$home/.ssh" ] && rm -f "$home/.ssh"
        install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"
        keys=$home/.ssh/authorized_keys
        [ -L "$keys" ] && rm -f "$keys"
        touch "$keys"
        added=0
        # Only plain key lines (no options such as command=): type, base64 key, optional comment.
        tr -d '\r' < "$MOUNT/galley/authorized_keys" \
            | grep -Ex '(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]+( .*)?' \
            > "$MOUNT.keys" || true
        while IFS= read -r line; do
            grep -qxF -- "$line" "$keys" || { printf '%s\n' "$line" >> "$keys"; added=$((added + 1)); }
        done < "$MOUNT.keys"
        rm -f "$MOUNT.keys"
        chown "$user:$group" "$keys" && chmod 0600 "$keys"
        say "installed $added SSH public key(s) in $keys"
    fi
    sudoers=/etc/sudoers.d/90-galley-$user
    printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$user" > "$sudoers.tmp" && chmod 0440 "$sudoers.tmp"
    if ! command -v visudo >/dev/null 2>&1 || visudo -c -q -f "$sudoers.tmp" >/dev/null; then
        mv -f "$sudoers.tmp" "$sudoers" && say "passwordless sudo for $user ($sudoers)"
    else
        rm -f "$sudoers.tmp"; say "the sudoers file for $user did not check out"; failed=1
    fi
    hash=$(first_line "$MOUNT/galley/password-hash")
    if [ -f "$MOUNT/galley/password-hash" ]; then
        if matches '\$(1|5|6|y|2b|2y)\$[^:[:space:]]{1,512}' "$hash"; then
            printf '%s:%s\n' "$user" "$hash" | chpasswd -e && say "password set for $user"
        else
            say "refusing the password hash: not a crypt(3) hash"; failed=1
        fi
    else
        usermod -L "$user" 2>/dev/null; say "password of $user locked (SSH keys only)"
    fi
    grep -qxF -- "$user" "$STATE/provisioned-users" 2>/dev/null || printf '%s\n' "$user" >> "$STATE/provisioned-users"
fi

rm -f "$STATE/custom-data" "$STATE/custom-data.pending"
if [ -f "$MOUNT/galley/custom-data" ]; then
    install -m 0600 -o root -g root "$MOUNT/galley/custom-data" "$STATE/custom-data"
    say "customData kept in $STATE/custom-data ($(wc -c < "$STATE/custom-data") bytes)"
    if [ "$(head -c 2 "$STATE/custom-data")" = '#!' ]; then
        : > "$STATE/custom-data.pending"
        say "customData is a script: galley-custom-data.service runs it once the network is up"
    fi
fi

if [ "$failed" = 0 ]; then
    printf '%s\n' "$instance_id" > "$STATE/instance-id.tmp" && mv -f "$STATE/instance-id.tmp" "$STATE/instance-id"
    say "instance $instance_id provisioned"
else
    say "instance $instance_id: provisioning had errors (see above); it runs again on the next boot"
    exit 1
fi
""".replace("@RESERVED@", _RESERVED_WORDS)

DEPROVISION_SCRIPT = f"""#!/bin/sh
# galley-deprovision [+user]: make this machine ready to be captured as a generalized image,
# as `waagent -deprovision+user` does on Azure (see galley/builder/provisioning.py).
#   +user, --delete-provisioned-users   also delete the admin users Galley's agent provisioned
#                                       (/var/lib/galley/provisioned-users) and their homes
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
PROVISIONED=/var/lib/galley/provisioned-users
delete_users=0
for arg in "$@"; do
    case $arg in
        +user|--delete-provisioned-users) delete_users=1 ;;
        -h|--help) sed -n '2,5s/^# \\{{0,1\\}}//p' "$0"; exit 0 ;;
        *) echo "galley-deprovision: unknown argument '$arg' (use +user)" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    echo "galley-deprovision: run it as root (sudo galley-deprovision +user)" >&2
    exit 1
fi
set --
if [ "$delete_users" = 1 ] && [ -f "$PROVISIONED" ]; then
    set -- $(grep -Ex '[a-z][a-z0-9_-]{{0,31}}' "$PROVISIONED" | sort -u)
fi
# journald writes to /run from here on, so the journal files below can go.
journalctl --relinquish-var >/dev/null 2>&1 || true
/bin/sh /{DEPROVISION_LIB_PATH} "$@"
rc=$?
if [ -f "$PROVISIONED" ]; then
    for user in "$@"; do
        getent passwd "$user" >/dev/null 2>&1 || sed -i "/^$user\\$/d" "$PROVISIONED"
    done
    [ -s "$PROVISIONED" ] || rm -f "$PROVISIONED"
fi
echo "galley-deprovision: done (exit code $rc); power off and generalize the VM"
exit $rc
"""

DEPROVISION_LIB = "#!/bin/sh\n# Galley's deprovisioning (galley/builder/generalize.py); usage: deprovision.sh [user ...]\n" \
    + DEFAULT_DEPROVISIONING_SHELL


def guest_files() -> dict[str, tuple[str, int]]:
    """Path inside the image (relative to /) -> (content, mode) for the agent and galley-deprovision."""
    return {
        AGENT_PATH: (AGENT_SCRIPT, 0o755),
        f"etc/systemd/system/{AGENT_UNIT_NAME}": (AGENT_UNIT, 0o644),
        f"etc/systemd/system/{CUSTOM_DATA_UNIT_NAME}": (CUSTOM_DATA_UNIT, 0o644),
        DEPROVISION_PATH: (DEPROVISION_SCRIPT, 0o755),
        DEPROVISION_LIB_PATH: (DEPROVISION_LIB, 0o755),
    }


GUEST_UNITS = (AGENT_UNIT_NAME, CUSTOM_DATA_UNIT_NAME)
