#!/usr/bin/env bash
# Prints the path of a Chromium for the /docs browser test, installing
# Debian's `chromium` package when none is found. FERRITE_TEST_CHROMIUM wins.
set -euo pipefail
if [[ -n "${FERRITE_TEST_CHROMIUM:-}" ]]; then
    echo "$FERRITE_TEST_CHROMIUM"
    exit 0
fi
for name in chromium chromium-browser google-chrome; do
    if path=$(command -v "$name"); then
        echo "$path"
        exit 0
    fi
done
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo -n "$@"; fi; }
echo "installing Chromium (Debian packages) for the /docs browser test..." >&2
if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; then
    echo "scripts/chromium.sh: could not install Chromium; set FERRITE_TEST_CHROMIUM to a Chromium binary" >&2
    exit 1
fi
command -v chromium
