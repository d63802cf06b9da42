#!/usr/bin/env bash
# Creates a development PKI for two agencies under certs/dev/ with `passerelle init`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p certs/dev
cargo run --quiet --release -- init --agency tg.anpe --dir certs/dev/tg.anpe --listen 127.0.0.1:7443 --metrics-listen 127.0.0.1:9464
cargo run --quiet --release -- init --agency be.vdab --dir certs/dev/be.vdab --listen 127.0.0.1:7444 --metrics-listen 127.0.0.1:9465
