#!/usr/bin/env bash
# Installs everything pyro needs on Debian 12 (x86_64), builds it and puts `pyro` on PATH.
# Idempotent: a second run installs nothing and only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node.js 20.19+ is the one prerequisite this script cannot install: Debian 12's own
# nodejs package is version 18.
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  echo "[setup] error: pyro needs Node.js >= 20.19 with npm (found: $(node --version 2>/dev/null || echo none)); install it first, e.g. from NodeSource" >&2
  exit 1
fi

# Debian packages: the VMM, the guest kernel source and what builds it, the
# environment builder, and the guest agent's compiler.
PACKAGES=(
  qemu-system-x86 linux-source-6.1 mmdebstrap e2fsprogs cpio gcc make libc6-dev
  bc flex bison libelf-dev libssl-dev xz-utils ca-certificates python3 patch
  # mmdebstrap's recommends that a root-mode build can use (key checks, arch detection).
  gpg arch-test libdpkg-perl mount
  # prlimit and setpriv, which jail the VMM (Essential on Debian; listed to say so).
  util-linux
  # The network tests: their resolver (in a test network namespace), `ip netns`, and the
  # test TLS servers' certificates.
  dnsmasq-base iproute2 openssl
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[setup] phase=apt-install packages=${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "[setup] phase=npm-install" >&2
if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  :
else
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "[setup] phase=build" >&2
npm run --silent build
chmod +x dist/cli/main.js
# `pyro` on PATH, pointing at this checkout.
npm link --no-audit --no-fund --loglevel=error >/dev/null
echo "[setup] phase=done pyro=$(command -v pyro)" >&2
