#!/usr/bin/env bash
# Headless Chromium for the report rendering test (Debian's package; idempotent).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "chromium-setup: not root, cannot install chromium; the report rendering test will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null || { echo "chromium-setup: chromium did not install" >&2; exit 1; }
