#!/usr/bin/env bash
# Checks what the local stack needs from the machine. Debian packages that are missing are installed
# when running as root with apt-get (as CI and a fresh dev container do); otherwise this stops and
# says what to install. Go is never installed here: Debian's is too old for Kubernetes.
set -euo pipefail

missing=()   # Debian packages to install
problems=()  # what cannot be installed from here

have() { command -v "$1" >/dev/null 2>&1; }

have redis-server || missing+=(redis-server)
have redis-benchmark || missing+=(redis-tools)
have openssl || missing+=(openssl)
have setpriv || missing+=(util-linux)
have java || missing+=(openjdk-17-jre-headless)
have mvn || missing+=(maven)
have chromium || missing+=(chromium)  # the console's page is tested in it (playwright-core drives it)
have go || problems+=("Go 1.25 or newer is missing: install it from https://go.dev/dl (Debian's golang-go is too old for Kubernetes)")

if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && have apt-get; then
    echo "prerequisites: installing ${missing[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts a system redis-server on install; the stack runs its own on free ports.
    if have systemctl; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  else
    problems+=("missing Debian packages: sudo apt-get install ${missing[*]}")
  fi
fi

if have redis-server; then
  v=$(redis-server --version | sed -n 's/.* v=\([0-9]*\).*/\1/p')
  ((${v:-0} >= 7)) || problems+=("redis-server ${v:-?} is too old: Redis 7 or newer is needed (XINFO GROUPS reports lag from 7)")
fi

if ((${#problems[@]})); then
  printf 'prerequisites: %s\n' "${problems[@]}" >&2
  exit 1
fi
