#!/usr/bin/env bash
# Render a ccv run report in headless Chromium and check that a real page came out.
#
# Usage:
#   scripts/check_report_in_browser.sh REPORT.html [SCREENSHOT.png]
#
# - Installs Debian's `chromium` package if no chromium is on PATH (needs root or sudo, and
#   network access to the Debian mirrors; nothing else is downloaded).
# - Renders REPORT.html from disk (file://) with networking features off, a throw-away profile and
#   a 1200x3000 window, and writes SCREENSHOT.png (default: REPORT.png next to the report).
# - Fails (exit 1) if the screenshot is missing or smaller than MIN_BYTES (default 20000): a
#   blank or error page compresses to a few kB.
#
# Look at the PNG afterwards: charts drawn, tables aligned, nothing cut off.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi

report=$(realpath "$1")
if [[ ! -s "$report" ]]; then
    echo "error: report $1 does not exist or is empty" >&2
    exit 2
fi
out=$(realpath -m "${2:-${report%.html}.png}")
min_bytes=${MIN_BYTES:-20000}

browser=""
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser=$candidate
        break
    fi
done
if [[ -z "$browser" ]]; then
    echo "chromium not found: installing the Debian package" >&2
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        sudo="sudo"
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium
    browser=chromium
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out"

# --screenshot writes relative to the working directory when given a bare name: use the full path.
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --screenshot="$out" --window-size=1200,3000 \
    "file://$report" >/dev/null 2>&1 || true

if [[ ! -f "$out" ]]; then
    echo "FAIL: $browser wrote no screenshot of $report" >&2
    exit 1
fi
size=$(stat -c %s "$out")
if (( size < min_bytes )); then
    echo "FAIL: screenshot $out is only $size bytes (< $min_bytes): blank or broken page?" >&2
    exit 1
fi
echo "OK: $out ($size bytes) rendered from $report by $browser"
