#!/usr/bin/env bash
# All benchmarks, each reported against a baseline measured in the same run:
#  1. native classification cost (cargo bench --bench classify), and the
#     incident loop's commands against a replay of the same log
#     (cargo bench --bench incident);
#  2. wasm size, raw and gzip, of both workers' release builds (the visitor
#     worker's is the request path's cold start: target 250 KB gzip);
#  3. end to end on 127.0.0.1: origin direct vs bpm-edge with and without
#     counting (req/s, p50/p99), Durable Object calls and row writes per
#     1,000 requests (scripts/bench-e2e.mjs; installs wrk from Debian);
#  4. the dashboard's API (overview, 30-day referral report) for 20 BPMs over
#     35 days of minute data, and one alert evaluation as the difference
#     between an evaluating and an idle tick (scripts/bench-dashboard.mjs);
#  5. an API call authorised by a Cloudflare Access JWT against one with the
#     bearer token (scripts/bench-access.mjs);
#  6. CPU time, req/s and p50/p99 per request on raw workerd (no wrangler
#     proxy) for bpm-edge with counting off and on, and the CPU of a fresh
#     isolate's first request, against a six-line JS passthrough worker
#     (scripts/bench-cpu.mjs);
#  7. what one more site costs: the shipped site served 1, 2 and 4 times from
#     one deployment (wasm size, the cron's tick of every site's alert
#     object), against the one-site build (scripts/bench-sites.mjs).
# Results land in bench-results/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-toolchain.sh
export PATH="$HOME/.cargo/bin:$root/node_modules/.bin:$PATH"
mkdir -p bench-results

echo "== 1. classification (native)"
cargo bench --quiet --bench classify

echo "== 1b. the incident loop: replay, backtest, discover, simulate (native)"
cargo bench --quiet --bench incident

echo "== 2. wasm size (release build)"
bash scripts/build-worker.sh >/dev/null
json="{"
for w in visitor control; do
  raw=$(stat -c %s "build/$w/index_bg.wasm")
  gz=$(gzip -9 -c "build/$w/index_bg.wasm" | wc -c)
  printf '| %s worker wasm | raw %d bytes (%d KiB) | gzip -9 %d bytes (%d KiB) |\n' "$w" "$raw" "$((raw / 1024))" "$gz" "$((gz / 1024))"
  json+="\"${w}_raw_bytes\":$raw,\"${w}_gzip_bytes\":$gz,"
done
printf '%s}\n' "${json%,}" > bench-results/wasm-size.json

echo "== 3. end to end on 127.0.0.1"
BPM_SKIP_BUILD=1 node scripts/bench-e2e.mjs --install-wrk "$@"

echo "== 4. dashboard API and alert evaluation inside the worker"
node scripts/bench-dashboard.mjs

echo "== 5. Cloudflare Access JWT verification"
BPM_SKIP_BUILD=1 node scripts/bench-access.mjs

echo "== 6. CPU per request on raw workerd against a JS passthrough"
node scripts/bench-cpu.mjs

echo "== 7. several sites: wasm size and the cron's tick per site"
node scripts/bench-sites.mjs
