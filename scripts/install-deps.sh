#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine: the tools the
# real-peer tests drive (namespaces, nft loss, ethtool, the Python kernel
# peer, ping, the load client's python3), what the AF_XDP device's build
# needs, the C compiler, curl and the real servers (nginx, redis) the
# preload tests use, and cargo-fuzz.
# Idempotent and quiet when all is present.
set -euo pipefail

need_apt=()
pkgs=(iproute2 nftables ethtool python3 iputils-ping)
# AF_XDP (daemon/src/device/xdp.rs): xsk-rs builds the bundled libxdp and
# libbpf from C (its `use_cc_build` feature) and compiles libxdp's XDP
# programs to BPF with clang; bindgen needs libclang (a clang dependency);
# m4 expands libxdp's dispatcher source; make and pkg-config run the libbpf
# build, which links libelf and zlib.
pkgs+=(clang libelf-dev zlib1g-dev pkg-config m4 make)
# The preload's oracle tests compile C programs; curl is a real client.
pkgs+=(gcc libc6-dev curl)
# Real programs run under the preload against the daemon: socat, nginx,
# redis-server (its clients redis-cli and redis-benchmark are in
# redis-tools). The tests start their own redis-server with their own
# config; the Debian service apt starts on 127.0.0.1:6379 is not used.
pkgs+=(socat nginx redis-server redis-tools)
# The real HTTP load tools that drive nginx (tests and the benchmark
# report): wrk, ab (apache2-utils).
pkgs+=(wrk apache2-utils)
# nginx-tests/ proxies TCP with the stream module (dynamic in Debian).
pkgs+=(libnginx-mod-stream)
# The benchmark report's charts (scripts/bench-report.py).
pkgs+=(python3-matplotlib)
for pkg in "${pkgs[@]}"; do
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
