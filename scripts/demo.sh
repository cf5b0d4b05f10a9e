#!/usr/bin/env bash
# Runs bpm-edge locally, as a newcomer would: installs the pinned toolchain
# (first time ~15 min, then seconds), starts a small demo shop on
# 127.0.0.1:8788, bpm-edge in front of it under `wrangler dev` on
# 127.0.0.1:8787 (counts persist in .wrangler/state), imports five weeks of
# synthetic history (once; later runs add only the time they missed), runs a
# traffic generator, and ticks alert evaluation every minute (what the cron
# trigger does when deployed). Ctrl-C stops everything.
#
# Environment: DEMO_PORT (8787), ORIGIN_PORT (8788), DEMO_RPS (5).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-toolchain.sh
export PATH="$HOME/.cargo/bin:$root/node_modules/.bin:$PATH"
port=${DEMO_PORT:-8787}
origin_port=${ORIGIN_PORT:-8788}
rps=${DEMO_RPS:-5}
[ -f .dev.vars ] || cp .dev.vars.example .dev.vars
token=$(sed -n 's/^BPM_API_TOKEN=//p' .dev.vars | head -n 1)

pids=()
stop() {
  node scripts/demo-history.mjs --mark-end 2>/dev/null || true
  [ -n "${ticker:-}" ] && kill -TERM -- "-$ticker" 2>/dev/null
  for pid in "${pids[@]}"; do
    kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid" 2>/dev/null || true
  done
}
trap stop EXIT INT TERM

setsid node scripts/demo-origin.mjs --port "$origin_port" &
pids+=($!)
export CI=true WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
# Both workers in one workerd: the visitor worker first (it gets the port and
# the --var), the control worker second (its vars from wrangler.toml and
# .dev.vars). The flag lets the visitor pass wrangler's scheduled-event
# endpoint on to the control worker's cron (see workers/visitor/entry.mjs).
configs=(-c workers/visitor/wrangler.toml -c wrangler.toml
  --compatibility-flags service_binding_extra_handlers)
setsid wrangler dev "${configs[@]}" --ip 127.0.0.1 --port "$port" --persist-to .wrangler/state \
  --var "ORIGIN_URL:http://127.0.0.1:$origin_port" &
pids+=($!)

echo "waiting for bpm-edge on 127.0.0.1:$port (the first start builds the worker)..."
for _ in $(seq 1 600); do
  if curl -fs "http://127.0.0.1:$port/_bpm/api/health" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fs "http://127.0.0.1:$port/_bpm/api/health" >/dev/null || { echo "bpm-edge did not start" >&2; exit 1; }

node scripts/demo-history.mjs --target "http://127.0.0.1:$port" --token "$token" --rps "$rps"

setsid node scripts/traffic.mjs --target "http://127.0.0.1:$port" --rps "$rps" &
pids+=($!)
# The cron trigger of a deployment: one alert evaluation tick a minute.
setsid bash -c "while sleep 60; do curl -fs -o /dev/null 'http://127.0.0.1:$port/cdn-cgi/handler/scheduled?cron=*+*+*+*+*' || true; done" &
ticker=$!

from=$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:00Z)
to=$(date -u -d '+1 hour' +%Y-%m-%dT%H:00:00Z)
cat <<INFO

bpm-edge is counting demo traffic in front of the demo shop.
  dashboard:              http://127.0.0.1:$port/_bpm/  (log in with the API token)
  site through bpm-edge:  http://127.0.0.1:$port/
  API token (.dev.vars):  $token
Try, within a minute:
  curl -H "Authorization: Bearer $token" \\
    "http://127.0.0.1:$port/_bpm/api/series?metric=login_views&step=minute&from=$from&to=$to"
  curl -H "Authorization: Bearer $token" \\
    "http://127.0.0.1:$port/_bpm/api/series?metric=marketing_views&step=hour&from=$from&to=$to&by=source"
Ctrl-C stops the demo.

INFO
wait
