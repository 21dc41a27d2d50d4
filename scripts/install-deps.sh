#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine: the tools the
# real-peer tests drive (namespaces, nft loss, ethtool, the Python kernel
# peer, ping), the C compiler and curl the preload tests use, and cargo-fuzz.
# Idempotent and quiet when all is present.
set -euo pipefail

need_apt=()
for pkg in iproute2 nftables ethtool python3 iputils-ping gcc libc6-dev curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [[ -z "${SLUICE_DEPS_NO_FUZZ:-}" ]] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "install-deps: cargo install cargo-fuzz (about a minute)"
  cargo install --quiet --locked cargo-fuzz
fi
