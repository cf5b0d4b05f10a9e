#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests
# (playwright-core drives it; no test tool downloads a browser of its own).
# Reuses an installed one; otherwise installs the `chromium` package with
# apt-get (through sudo when not root), refreshing the package lists first
# only if the plain install fails.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  as_root=(sudo)
fi
apt_install() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
}
echo "ensure-chromium: installing Debian's chromium"
if ! apt_install; then
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  apt_install
fi
test -x /usr/bin/chromium
