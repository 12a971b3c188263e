#!/usr/bin/env bash
# Install the system packages Kafscale's tests need on Debian/Ubuntu, and the Node
# dependencies of tests/js. Idempotent: installs only what is missing, runs
# `apt-get update` at most once, and does nothing at all when everything is present.
#
#   scripts/install-system-deps.sh                everything (make test)
#   scripts/install-system-deps.sh --python-only  only what building the venv needs (make install)
#
#   kcat                       a librdkafka-based client the integration tests drive
#   chromium                   a real browser, headless, for the web console's test
#   build-essential            gcc/g++/make for the Cython extension and npm's lz4 (if missing)
#   python3-dev                Python.h for the Cython extension (if missing)
#   python3-venv               `python3 -m venv` (if missing)
set -euo pipefail

python_only=0
case "${1:-}" in
    --python-only) python_only=1 ;;
    "") ;;
    *) echo "usage: $0 [--python-only]" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

log() { printf 'install-system-deps: %s\n' "$*" >&2; }

# --- what is missing --------------------------------------------------------
missing=()

if [ "$python_only" -eq 0 ]; then
    command -v kcat >/dev/null 2>&1 || missing+=(kcat)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi

# A C compiler for the Cython extension; g++ and make also build kafkajs-lz4's native lz4.
if ! command -v gcc >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    missing+=(build-essential)
fi

# Headers for the interpreter the project uses (python3, 3.11 on Debian 12).
py="${PYTHON:-python3}"
if command -v "$py" >/dev/null 2>&1; then
    inc="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)"
    if [ -z "$inc" ] || [ ! -f "$inc/Python.h" ]; then
        missing+=(python3-dev)
    fi
    if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
else
    missing+=(python3 python3-dev python3-venv)
fi

# --- install it -------------------------------------------------------------
if [ "${#missing[@]}" -eq 0 ]; then
    log "system packages: all present"
else
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing: ${missing[*]}; this script only knows apt-get (Debian/Ubuntu)."
        log "install them with your package manager and re-run."
        exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        # Never wait for a password in CI or without a terminal.
        if [ -n "${CI:-}" ] || [ ! -t 0 ]; then as_root=(sudo -n); else as_root=(sudo); fi
    else
        log "missing: ${missing[*]}; not root and no sudo available."
        log "run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
        exit 1
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update
    "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ "$python_only" -eq 1 ]; then
    exit 0
fi

if command -v kcat >/dev/null 2>&1; then
    log "kcat: $(kcat -V 2>&1 | grep -m1 -i "^version" || kcat -V 2>&1 | head -n 1)"
fi

# --- Node dependencies of tests/js -------------------------------------------
js="$root/tests/js"
if [ -f "$js/package-lock.json" ]; then
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        # npm ci wipes and reinstalls node_modules; skip it when the lock file has not
        # changed since the last successful install.
        stamp="$js/node_modules/.kafscale-npm-ci.stamp"
        if [ -f "$stamp" ] && [ "$stamp" -nt "$js/package-lock.json" ] && [ "$stamp" -nt "$js/package.json" ]; then
            log "tests/js: node_modules up to date"
        else
            # kafkajs-lz4 needs the native lz4 module, built by node-gyp: point it at the
            # installed Node headers so it does not try to download them.
            node_prefix="$(dirname "$(dirname "$(command -v node)")")"
            if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node_version.h" ]; then
                export npm_config_nodedir="$node_prefix"
            fi
            log "tests/js: npm ci"
            (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
            touch "$stamp"
        fi
    else
        log "node/npm not found: skipping tests/js (the kafkajs tests will be skipped)"
    fi
fi
