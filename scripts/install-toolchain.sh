#!/usr/bin/env bash
# Installs the pinned build toolchain, offline-safe (registries only), and
# skips whatever is already installed at the pinned version. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/pins.env
. "$here/pins.env"
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed | grep -qx "$RUST_WASM_TARGET"; then
  rustup target add "$RUST_WASM_TARGET"
fi

have_version() { # binary, expected version
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -q -- "$2"
}

if ! have_version worker-build "$WORKER_BUILD_VERSION"; then
  cargo install --locked worker-build --version "$WORKER_BUILD_VERSION"
fi
# No --locked: the CLI's own lockfile pins a crate the registry lacks.
if ! have_version wasm-bindgen "$WASM_BINDGEN_VERSION"; then
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [ -f "$root/package.json" ]; then
  # Not `npm ci`: the registry lacks workerd's non-Linux builds, which makes
  # `npm ci` call the lockfile out of sync; `npm install` honours the lockfile.
  (cd "$root" && npm install --no-audit --no-fund)
fi
