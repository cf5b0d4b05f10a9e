#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the pinned toolchain
# (reusing what is already installed), checks formatting and lints, runs the
# native unit and CLI tests, builds the worker once, and runs the end-to-end
# tests against `wrangler dev` (real workerd, local Durable Objects) with a
# real origin on 127.0.0.1, then the dashboard's browser tests in Debian's
# headless Chromium (installed, with curl, by scripts/ensure-debian-packages.sh
# when missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-toolchain.sh
export PATH="$HOME/.cargo/bin:$root/node_modules/.bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy --workspace --target wasm32-unknown-unknown --lib --quiet -- -D warnings
echo "== native tests"
cargo test --quiet
echo "== dashboard logic (Node)"
node --test tests/dashboard/*.test.mjs
echo "== build the two workers"
bash scripts/build-worker.sh
# The same workers with two sites (tests/e2e/sites.toml), for the tests of
# several sites: only the configuration differs, so this recompiles the
# crate that embeds it, not the dependencies.
BPM_CONFIG=tests/e2e/sites.toml BPM_BUILD_DIR=build/sites bash scripts/build-worker.sh
# Chromium first: one e2e file (receivers) also drives the dashboard; curl
# for the annotations test.
bash scripts/ensure-debian-packages.sh
echo "== end-to-end tests (wrangler dev)"
export BPM_SKIP_BUILD=1
node --test --test-concurrency=1 tests/e2e/*.test.mjs
echo "== browser tests (headless Chromium against wrangler dev)"
node --test --test-concurrency=1 tests/browser/*.test.mjs
