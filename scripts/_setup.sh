# Sourced by scripts/serve and scripts/test: a virtualenv in .venv with Galley installed into it.
# Installs what a fresh Debian machine lacks (python3-venv) with apt-get; you are expected to be root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "need root to apt-get install $*" >&2
    return 1
  fi
  if [ -z "${GALLEY_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    export GALLEY_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv python3-pip
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
EXTRAS=${GALLEY_EXTRAS:-}
stamp=".venv/.installed${EXTRAS:+-$EXTRAS}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}"
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
