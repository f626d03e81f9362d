#!/usr/bin/env bash
# Installs every Debian package apxserve needs to build, test and run.
# Idempotent: packages already present are left alone. Run as root (or with sudo).
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config
  libxgboost-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libboost-dev libeigen3-dev libcpp-httplib-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev wrk
  clang libclang-rt-14-dev
  ca-certificates curl
  clickhouse-server
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js + npm fetch and convert the flights data. Some images ship nodejs with its own npm
# (the Debian "npm" package would conflict), so only install them when absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# clickhouse-server's package would start a system-wide server on the default ports; apxserve
# runs its own private servers (scripts/clickhouse.sh), so services are not started here.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  policy=/usr/sbin/policy-rc.d
  # Removed however this script ends (an interrupted apt-get must not leave services blocked).
  trap '$SUDO rm -f "$policy"' EXIT
  trap 'exit 130' INT TERM HUP
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
[ -z "$policy" ] || $SUDO rm -f "$policy"
echo "setup: done"
