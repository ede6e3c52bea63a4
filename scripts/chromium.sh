#!/usr/bin/env bash
# Prints the path of a Chromium that runs headless, installing Debian's `chromium` package
# first if none is found and this machine can install packages (root, or passwordless sudo).
# Exit 3, with the reason on stderr, where no browser can be had (no apt-get, no root); any
# other failure (an install that failed) is an error. The explorer's browser test calls this
# (the README's test command needs nothing installed by hand).
set -euo pipefail

find_browser() {
    for name in chromium chromium-browser google-chrome-stable google-chrome; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

find_browser && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "no chromium found and no apt-get to install it with (install Chromium or Chrome)" >&2
    exit 3
fi
if [ "$(id -u)" = 0 ]; then
    as_root=()
elif sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "no chromium found, and installing it needs root (run: sudo apt-get install chromium)" >&2
    exit 3
fi
# One install at a time: parallel tests may all ask.
exec 9>"${TMPDIR:-/tmp}/verity-chromium-install.lock"
flock 9
find_browser && exit 0
echo "installing Debian's chromium for the explorer's browser test…" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
find_browser
