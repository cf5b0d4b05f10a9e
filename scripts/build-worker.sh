#!/usr/bin/env bash
# Builds the worker into build/ with the pinned, already-installed tools and
# never lets worker-build download anything. wrangler runs this at every
# start; BPM_SKIP_BUILD=1 reuses an existing build (the test suite builds once).
# BPM_BUILD_PROFILE=dev skips wasm-opt for fast local iteration. Also copies
# the dashboard's vendored chart library into www/vendor/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The dashboard's chart library, from the pinned npm package into the
# gitignored www/vendor/ (served by the worker itself: the page loads nothing
# from a third party). Also on BPM_SKIP_BUILD=1: cheap, and a fresh checkout
# whose worker was built elsewhere still gets it.
uplot_dist="$root/node_modules/uplot/dist"
if [ ! -f "$uplot_dist/uPlot.iife.min.js" ]; then
  echo "build-worker: node_modules/uplot is missing; run npm install (scripts/install-toolchain.sh)" >&2
  exit 1
fi
mkdir -p www/vendor
for f in uPlot.iife.min.js uPlot.min.css; do
  # Copy only when changed: wrangler dev watches www/ and reloads on a write.
  cmp -s "$uplot_dist/$f" "www/vendor/$f" || cp "$uplot_dist/$f" "www/vendor/$f"
done

# The module entry (see its header) goes next to worker-build's output.
install_entry() {
  cmp -s src/edge/entry.mjs build/entry.mjs || cp src/edge/entry.mjs build/entry.mjs
}

if [ "${BPM_SKIP_BUILD:-}" = "1" ] && [ -f build/index.js ]; then
  install_entry
  exit 0
fi
export PATH="$HOME/.cargo/bin:$root/node_modules/.bin:$PATH"
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
for tool in "$WASM_BINDGEN_BIN" "$ESBUILD_BIN" "$WASM_OPT_BIN" "$(command -v worker-build || true)"; do
  if [ -z "$tool" ] || [ ! -x "$tool" ]; then
    echo "build-worker: missing tool ${tool:-worker-build}; run scripts/install-toolchain.sh" >&2
    exit 1
  fi
done
if [ "${BPM_BUILD_PROFILE:-release}" = "dev" ]; then
  worker-build --release --no-opt
else
  worker-build --release
fi
install_entry
