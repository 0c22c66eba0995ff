#!/usr/bin/env bash
# Install the browser that the app's end-to-end test drives (tests/app/test_app_browser.py):
# Debian's Chromium, through Playwright (never a browser Playwright downloads).
#
#   scripts/setup_browser.sh     # run by `make test` (and so by CI); not by `make quickstart`
#
# It changes the system, so it runs only for the tests: as root with apt-get (CI runs as
# root) it installs the `chromium` package when /usr/bin/chromium is missing; elsewhere it
# says so, and the browser test is skipped with the command that would install it.
set -euo pipefail

log() { printf 'setup: %s\n' "$*"; }

if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    log "installing Chromium for the browser test (apt-get install chromium)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
        printf 'setup: error: apt-get install chromium failed\n' >&2
        exit 1
    fi
else
    log "note: /usr/bin/chromium is missing, so the browser test will be skipped" \
        "(install Debian's chromium package as root to run it)"
fi
