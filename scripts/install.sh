#!/usr/bin/env bash
# Installs everything proxbus needs on a fresh Debian machine with Python 3.11 and pip:
# uv, the locked workspace (.venv), and the Debian packages the tests use (dovecot for IMAP,
# rsyslog to validate the rsyslog configurations in docs/, nginx + its stream module to run the
# replicas balancer deploy/lb/nginx.conf, chromium + fonts-dejavu-core for the web console's
# browser tests, driven by Playwright with executable_path=/usr/bin/chromium),
# Node.js + npm when the machine has no node (Debian's nodejs/npm), and the pinned official MCP
# clients in tools/mcp-clients (Inspector CLI, conformance suite) for the MCP gateway's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

pip_uv() { python3 -m pip install --quiet --disable-pip-version-check "$@" 'uv>=0.5,<1'; }
# Debian 12+'s own python3 is "externally managed" (PEP 668): pip refuses a system-wide install.
# uv is one binary without dependencies, so there it goes to the user's ~/.local/bin.
pip_uv 2>/dev/null || pip_uv --user --break-system-packages
UV="$(python3 scripts/find_uv.py)"

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  missing=""
  pkgs="dovecot-imapd rsyslog nginx libnginx-mod-stream chromium fonts-dejavu-core"
  # A machine image may ship its own Node.js (e.g. NodeSource's, which bundles npm and conflicts
  # with Debian's npm package): only a machine without node gets Debian's nodejs + npm.
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
  for pkg in $pkgs; do
    # "install ok installed" only: a removed package keeps its config and still answers dpkg -s.
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
  fi
  # The packages start a system dovecot on port 143 and nginx on port 80; tests run their own
  # on free ports.
  for service in dovecot nginx; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
      $SUDO systemctl stop "$service" || true
    fi
  done
fi

"$UV" sync --all-packages --locked

# The official MCP clients, exactly as locked. npm ci wipes node_modules first, so it runs only
# when the lock changed since the last install (a copy of the lock marks a finished install).
# They need Node.js >= 20.18 (Debian 13 ships 20.19; Debian 12's own nodejs is 18: too old).
MCP_CLIENTS=tools/mcp-clients
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 18) ? 0 : 1)' 2>/dev/null; then
  echo "WARNING: Node.js >= 20.18 + npm not found: $MCP_CLIENTS not installed (the gateway's Inspector/conformance tests will fail under CI)" >&2
elif ! cmp -s "$MCP_CLIENTS/package-lock.json" "$MCP_CLIENTS/node_modules/.installed-lock.json"; then
  npm ci --prefix "$MCP_CLIENTS" --no-audit --no-fund --loglevel=error
  cp "$MCP_CLIENTS/package-lock.json" "$MCP_CLIENTS/node_modules/.installed-lock.json"
fi
echo "proxbus installed: $("$UV" run --no-sync proxbus --version 2>/dev/null || echo 'workspace ready')"
if ! command -v uv >/dev/null 2>&1; then
  echo "uv is $UV, which is not on your PATH: run  export PATH=\"$(dirname "$UV"):\$PATH\"  (the README's commands call uv)"
fi
