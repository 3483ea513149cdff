#!/usr/bin/env bash
# Build the Python venv for the benchmark peers (bench/peers/peers.py).
#
#   bash bench/peers/setup.sh [VENV_DIR]      (default: <repo>/target/peers-venv)
#
# Idempotent: does nothing when VENV_DIR already holds a complete venv built from the same
# pins and Python. The venv is built in a temporary sibling directory and moved into place
# only when complete, so a half-built venv is never used. Progress goes to stderr; the only
# line on stdout is the venv's python path. $PYTHON picks the interpreter (default python3,
# must be >= 3.11 because of the pinned ipython/ipykernel).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
VENV="${1:-$REPO_ROOT/target/peers-venv}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$SCRIPT_DIR/constraints.txt"
# Top-level packages; every version (these and their dependencies) is fixed by constraints.txt.
# e2b 0.17.1 and e2b-code-interpreter 0.0.10 are yanked on PyPI; pip still installs a yanked
# release when it is pinned with ==.
REQS=(jupyter_server==2.21.1 ipykernel==7.4.0 jupyter_client==8.10.0 websocket-client==1.9.2
      e2b==0.17.1 e2b-code-interpreter==0.0.10)

log() { printf 'peers/setup.sh: %s\n' "$*" >&2; }

mkdir -p "$(dirname "$VENV")"
VENV="$(cd "$(dirname "$VENV")" && pwd)/$(basename "$VENV")"

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    log "need Python >= 3.11 (got $("$PYTHON" -V 2>&1)); set \$PYTHON"; exit 1; }

STAMP="$( { "$PYTHON" -VV; printf '%s\n' "${REQS[@]}"; cat "$CONSTRAINTS"; } | sha256sum | cut -d' ' -f1)"

up_to_date() {
    [[ -f "$VENV/.peers-stamp" && "$(cat "$VENV/.peers-stamp")" == "$STAMP" ]] &&
        "$VENV/bin/python" -c 'import jupyter_server, jupyter_client, websocket, e2b_code_interpreter.messaging' \
            >/dev/null 2>&1
}

if up_to_date; then
    log "up to date: $VENV"
    echo "$VENV/bin/python"
    exit 0
fi

# One builder at a time for this venv path.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$(dirname "$VENV")/.$(basename "$VENV").lock"
    flock 9
    HAVE_LOCK=1
    if up_to_date; then
        log "up to date (built by a concurrent run): $VENV"
        echo "$VENV/bin/python"
        exit 0
    fi
fi

TMP="$(dirname "$VENV")/.$(basename "$VENV").tmp.$$"
OLD="$(dirname "$VENV")/.$(basename "$VENV").old.$$"
cleanup() { rm -rf "$TMP" "$OLD"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# Leftovers of a build that was killed outright (only safe to remove while holding the lock).
if [[ -n "${HAVE_LOCK:-}" ]]; then
    rm -rf "$(dirname "$VENV")/.$(basename "$VENV")".tmp.* "$(dirname "$VENV")/.$(basename "$VENV")".old.*
fi

log "creating venv in $TMP"
rm -rf "$TMP"
"$PYTHON" -m venv "$TMP"

log "installing ${REQS[*]} (constraints: $CONSTRAINTS)"
"$TMP/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off \
    -c "$CONSTRAINTS" "${REQS[@]}" >&2

log "checking imports"
"$TMP/bin/python" -W ignore -c '
import jupyter_server, ipykernel, jupyter_client, zmq, websocket
from e2b_code_interpreter.messaging import JupyterKernelWebSocket
print("jupyter_server", jupyter_server.__version__, "ipykernel", ipykernel.__version__,
      "jupyter_client", jupyter_client.__version__, "websocket-client", websocket.__version__)
' >&2
"$TMP/bin/python" -m pip check --disable-pip-version-check >&2 || log "warning: pip check reported problems"

# Console scripts and activate scripts carry the build path; point them at the final one.
grep -rlIF -- "$TMP" "$TMP/bin" "$TMP/pyvenv.cfg" 2>/dev/null | while IFS= read -r f; do
    sed -i "s#$TMP#$VENV#g" "$f"
done
echo "$STAMP" > "$TMP/.peers-stamp"

if [[ -e "$VENV" ]]; then
    log "replacing stale $VENV"
    mv "$VENV" "$OLD"
fi
mv "$TMP" "$VENV"
log "ready: $VENV"
echo "$VENV/bin/python"
