#!/usr/bin/env bash
# Create (or reuse) a Python venv with the pinned Keystone test stack
# (keystone, glance, keystonemiddleware, gunicorn, python-openstackclient).
#   usage: setup-venv.sh VENV_DIR
# Idempotent: the venv is rebuilt only when constraints.txt has changed
# (its sha256 is stored in VENV_DIR/.constraints.sha256).
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 VENV_DIR" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
constraints="$here/constraints.txt"
venv="$1"
stamp="$venv/.constraints.sha256"
python="${PYTHON:-python3}"

# Serialise concurrent invocations (parallel test binaries) on a lock file.
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"${venv%/}.lock"
    flock 9
fi

want="$(sha256sum "$constraints" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ -x "$venv/bin/python" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "setup-venv: building $venv (this takes about 2 minutes)" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
log="$(mktemp)"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$constraints" keystone glance keystonemiddleware gunicorn requests python-openstackclient >"$log" 2>&1; then
    echo "setup-venv: pip install failed:" >&2
    tail -n 40 "$log" >&2
    rm -f "$log"
    exit 1
fi
rm -f "$log"
echo "$want" >"$stamp"
