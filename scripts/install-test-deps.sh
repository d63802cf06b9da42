#!/usr/bin/env bash
# Installs the system tools the test suite uses beyond cargo: testssl.sh (tests/testssl.rs)
# and the ext4 tools of the read-only data folder test (tests/disk_full.rs). Debian, as root.
set -euo pipefail
missing=()
command -v testssl >/dev/null 2>&1 || command -v testssl.sh >/dev/null 2>&1 || missing+=(testssl.sh)
command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
command -v losetup >/dev/null 2>&1 || missing+=(mount)
if [ ${#missing[@]} -eq 0 ]; then
    echo "test tools present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${missing[*]}: run this script as root (apt-get install)" >&2
    exit 1
fi
echo "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
