#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine. Idempotent and quiet
# when everything is present already.
set -euo pipefail

need_apt=()
for pkg in iproute2 nftables ethtool python3 iputils-ping; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
