#!/usr/bin/env bash
# Runs bpm-edge under `wrangler dev` on 127.0.0.1:${PORT:-8787} in front of
# $ORIGIN_URL (required), with counts persisted in .wrangler/state.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${ORIGIN_URL:?set ORIGIN_URL, e.g. ORIGIN_URL=http://127.0.0.1:3000}"
bash scripts/install-toolchain.sh
export PATH="$HOME/.cargo/bin:$root/node_modules/.bin:$PATH"
[ -f .dev.vars ] || cp .dev.vars.example .dev.vars
export CI=true WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
# Both workers in one workerd: the visitor worker first (it gets the port and
# the --var), the control worker second (its vars from wrangler.toml and
# .dev.vars). The flag lets the visitor pass wrangler's scheduled-event
# endpoint on to the control worker's cron (see workers/visitor/entry.mjs).
configs=(-c workers/visitor/wrangler.toml -c wrangler.toml
  --compatibility-flags service_binding_extra_handlers)
exec wrangler dev "${configs[@]}" --ip 127.0.0.1 --port "${PORT:-8787}" --persist-to .wrangler/state \
  --var "ORIGIN_URL:$ORIGIN_URL" "$@"
