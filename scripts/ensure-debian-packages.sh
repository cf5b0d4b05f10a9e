#!/usr/bin/env bash
# Makes sure the Debian packages the end-to-end and browser tests use are
# installed: Chromium at /usr/bin/chromium (playwright-core drives it; no
# test tool downloads a browser of its own) and curl (the annotations test
# posts as a CI pipeline would, with the README's command). Reuses what is
# installed; otherwise installs the missing packages with apt-get (through
# sudo when not root), refreshing the package lists first only if the
# plain install fails.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  as_root=(sudo)
fi
apt_install() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}
echo "ensure-debian-packages: installing ${missing[*]}"
if ! apt_install; then
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  apt_install
fi
test -x /usr/bin/chromium
command -v curl >/dev/null
