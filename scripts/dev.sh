#!/usr/bin/env bash
# The README's two commands, runnable on a fresh Debian 12 machine (Python 3.11):
#
#   bash scripts/dev.sh run    install, then run a broker on the local default stack
#   bash scripts/dev.sh test   install everything the tests need, then run them all
#
# It installs `make` and the build tools first when they are missing, then hands over
# to the Makefile (`make run` / `make test`), which does the rest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
    run|test) ;;
    *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
bash scripts/install-system-deps.sh --python-only
exec make "$1"
