#!/usr/bin/env bash
# Deploys both workers to Cloudflare: the control worker first (it defines
# the Durable Object classes and the service the visitor worker binds to),
# then the visitor worker (on your site's route). Needs `wrangler login` or
# CLOUDFLARE_API_TOKEN; extra arguments go to both `wrangler deploy`s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-toolchain.sh
export PATH="$HOME/.cargo/bin:$root/node_modules/.bin:$PATH"
bash scripts/build-worker.sh
export BPM_SKIP_BUILD=1
wrangler deploy -c wrangler.toml "$@"
wrangler deploy -c workers/visitor/wrangler.toml "$@"
