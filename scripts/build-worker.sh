#!/usr/bin/env bash
# Builds the two workers into build/visitor/ and build/control/ with the
# pinned, already-installed tools and never lets worker-build download
# anything. `scripts/build-worker.sh visitor` (or `control`) builds one;
# without an argument both. wrangler runs this at every start (each
# configuration's [build] names its worker); BPM_SKIP_BUILD=1 reuses an
# existing build (the test suite builds once).
# BPM_BUILD_PROFILE=dev skips wasm-opt for fast local iteration.
# BPM_CONFIG=FILE compiles another configuration than bpm.toml, and
# BPM_BUILD_DIR=DIR (under the repository) puts the workers in DIR/visitor
# and DIR/control instead of build/ (the test suite's two-site build:
# BPM_CONFIG=tests/e2e/sites.toml BPM_BUILD_DIR=build/sites). Also copies
# the dashboard's vendored chart library into www/vendor/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="${BPM_BUILD_DIR:-build}"
case "${1:-both}" in
  visitor) workers=(visitor) ;;
  control) workers=(control) ;;
  both) workers=(visitor control) ;;
  *) echo "build-worker: unknown worker '$1' (visitor, control or none for both)" >&2; exit 2 ;;
esac

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

# The visitor's module entry (see its header) goes next to worker-build's
# output; the control worker uses worker-build's own.
install_entry() {
  mkdir -p "$out/visitor"
  cmp -s workers/visitor/entry.mjs "$out/visitor/entry.mjs" ||
    cp workers/visitor/entry.mjs "$out/visitor/entry.mjs"
}

built() {
  local w
  for w in "${workers[@]}"; do
    [ -f "$out/$w/index.js" ] || return 1
  done
}

if [ "${BPM_SKIP_BUILD:-}" = "1" ] && built; then
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
opt=()
if [ "${BPM_BUILD_PROFILE:-release}" = "dev" ]; then
  opt=(--no-opt)
fi
for w in "${workers[@]}"; do
  (cd "workers/$w" && worker-build --release "${opt[@]}" --out-dir "$root/$out/$w")
done
install_entry
