"""Generalize an image after its customizers, as `waagent -force -deprovision+user` does on Azure.

Image Builder ends every Linux build by deprovisioning the build VM, unless a customizer left
its own commands in /tmp/DeprovisioningScript.sh: then that script runs instead. Here both
run inside the image through the build sandbox, like everything that touches the image's
files (a path in the image is the image's business: followed on the host, a symlink could
point anywhere).

The default deprovisioning removes what makes one machine itself, so that every VM made from
the image starts new:

- the users the customizers added (new /etc/passwd entries with a UID of 1000 or more), their
  home folders (when directly under /home) and mail, also from the backup copies
  (/etc/passwd- …); root's password locked
- the machine's identity: /etc/machine-id emptied (systemd makes one at first boot),
  /var/lib/dbus/machine-id (unless it links to /etc/machine-id), systemd's random seed and
  credential secret, the SSH host keys
- DNS settings in a plain /etc/resolv.conf, DHCP leases, cloud-init's, the Azure agent's and Galley's
  provisioning agent's state (its instance id and customData, so the next VM is provisioned anew)
- logs (files emptied, rotated ones and the journal removed), shell history, apt's package
  lists and downloaded packages, /tmp and /var/tmp
"""
from __future__ import annotations

import re

from .customize import SandboxCommand

DEPROVISIONING_SCRIPT = "/tmp/DeprovisioningScript.sh"
FIRST_REGULAR_UID = 1000
NOBODY_UID = 65534
_SAFE_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*\$?$")


def passwd_users(passwd: str) -> dict[str, int]:
    """name -> UID from the text of an /etc/passwd."""
    users = {}
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] and not line.startswith(("#", "+", "-")):
            try:
                users[fields[0]] = int(fields[2])
            except ValueError:
                continue
    return users


def added_users(before: str, after: str) -> list[str]:
    """Regular users (UID >= 1000, not nobody) in `after` that were not in `before`."""
    old = passwd_users(before)
    return [name for name, uid in passwd_users(after).items()
            if name not in old and FIRST_REGULAR_UID <= uid < 2 ** 32 - 2 and uid != NOBODY_UID]


def unsafe_user_names(names: list[str]) -> list[str]:
    """Names the deprovisioning script will not pass to userdel/sed (they cannot come from useradd)."""
    return [n for n in names if not _SAFE_USER.match(n)]


def default_deprovisioning(users: list[str]) -> SandboxCommand:
    users = [u for u in users if _SAFE_USER.match(u)]
    return SandboxCommand(("/bin/sh", "-c", DEFAULT_DEPROVISIONING_SHELL, "galley-deprovision", *users))


def custom_deprovisioning() -> SandboxCommand:
    return SandboxCommand(("/bin/sh", "-c", _CUSTOM_SCRIPT, "galley-deprovision", DEPROVISIONING_SCRIPT))


_CUSTOM_SCRIPT = """\
f=$1
echo "running $f (left by a customizer) instead of the default deprovisioning"
chmod 0755 "$f" 2>/dev/null
if [ "$(head -c 2 "$f")" = '#!' ]; then "$f" </dev/null; else /bin/sh "$f" </dev/null; fi
code=$?
rm -f -- "$f"
exit $code
"""

# Also baked into images Galley builds, where `galley-deprovision` runs it on a live guest
# (galley.builder.provisioning): keep it safe to run on a running system.
DEFAULT_DEPROVISIONING_SHELL = r"""
rc=0
echo "deprovisioning, as waagent -deprovision+user would"

for user in "$@"; do
    home=$(getent passwd "$user" 2>/dev/null | cut -d: -f6)
    if command -v userdel >/dev/null 2>&1; then
        userdel --force "$user"
        code=$?
        case $code in 0|6) ;; *) echo "userdel $user failed with exit code $code"; rc=1 ;; esac
    else
        pattern=$(printf '%s' "$user" | sed 's/[.$]/\\&/g')
        for db in /etc/passwd /etc/shadow /etc/group /etc/gshadow; do
            [ -f "$db" ] && sed -i "/^$pattern:/d" "$db"
        done
    fi
    # the home folder only where homes live: useradd -d can point anywhere (/opt/app, /usr ...)
    case $home in /home/?*) [ "${home#/home/*/}" = "$home" ] && rm -rf -- "$home" && echo "removed $home" ;; esac
    rm -f -- "/var/mail/$user" "/var/spool/mail/$user" "/etc/sudoers.d/90-galley-$user"
    if getent passwd "$user" >/dev/null 2>&1; then
        echo "user $user is still there"; rc=1
    else
        echo "deleted user $user"
    fi
done

[ -f /etc/shadow ] && sed -i 's/^root:[^:]*:/root:*:/' /etc/shadow && echo "locked root's password"
# the tools' backup copies (/etc/passwd- …) still name the deleted users: make them the current files
for db in passwd group shadow gshadow subuid subgid; do
    if [ -f "/etc/$db" ] && [ -f "/etc/$db-" ]; then cp -p "/etc/$db" "/etc/$db-"; fi
done

rm -f /etc/machine-id && : > /etc/machine-id && chmod 0444 /etc/machine-id && echo "emptied /etc/machine-id"
if [ -e /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then
    rm -f /var/lib/dbus/machine-id && echo "removed /var/lib/dbus/machine-id"
fi
rm -f /var/lib/systemd/random-seed /var/lib/systemd/credential.secret
for key in /etc/ssh/ssh_host_*; do
    [ -e "$key" ] && rm -f -- "$key" && echo "removed SSH host key $key"
done

if [ -f /etc/resolv.conf ] && [ ! -L /etc/resolv.conf ]; then
    : > /etc/resolv.conf && echo "cleared /etc/resolv.conf"
fi
rm -rf /var/lib/dhcp/*.leases /var/lib/dhcp/dhclient* /var/lib/dhclient/* /var/lib/dhcpcd/* \
       /var/lib/NetworkManager/*.lease /var/lib/NetworkManager/dhclient* /var/lib/systemd/network/*
rm -rf /var/lib/cloud/* /var/lib/waagent/*
rm -f /var/lib/galley/instance-id /var/lib/galley/custom-data /var/lib/galley/custom-data.pending
echo "removed DHCP leases, cloud-init and agent state (Galley's provisioning agent provisions again)"

if [ -d /var/log ]; then
    find /var/log -xdev -type f \( -name '*.gz' -o -name '*.xz' -o -name '*.zst' -o -name '*.bz2' \
        -o -name '*.[0-9]' -o -name '*.old' \) -delete
    find /var/log -xdev -type f -exec truncate -s 0 {} +
    rm -rf /var/log/journal/*
    echo "cleared /var/log"
fi
rm -f /root/.bash_history /root/.history /root/.sh_history /root/.lesshst \
      /home/*/.bash_history /home/*/.history /home/*/.sh_history
echo "removed shell history"

if [ -d /var/lib/apt/lists ]; then
    find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name lock ! -name partial -exec rm -rf {} +
fi
rm -f /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
for dir in /tmp /var/tmp; do
    [ -d "$dir" ] && find "$dir" -xdev -mindepth 1 -delete
done
echo "removed apt lists and caches, /tmp and /var/tmp"

export HISTSIZE=0
sync
exit $rc
"""
