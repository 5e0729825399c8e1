#!/usr/bin/env bash
# Installs everything proxbus needs on a fresh Debian machine with Python 3.11 and pip:
# uv, the locked workspace (.venv), and the Debian packages the tests use (dovecot for IMAP,
# rsyslog to validate the rsyslog configurations in docs/, chromium + fonts-dejavu-core for the
# web console's browser tests, driven by Playwright with executable_path=/usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'
UV="$(python3 -c 'import shutil,sysconfig,os; print(shutil.which("uv") or os.path.join(sysconfig.get_path("scripts"),"uv"))')"

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  missing=""
  for pkg in dovecot-imapd rsyslog chromium fonts-dejavu-core; do
    # "install ok installed" only: a removed package keeps its config and still answers dpkg -s.
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
  fi
  # The package starts a system dovecot on port 143; tests run their own on free ports.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet dovecot 2>/dev/null; then
    $SUDO systemctl stop dovecot || true
  fi
fi

"$UV" sync --all-packages --locked
echo "proxbus installed: $("$UV" run --no-sync proxbus --version 2>/dev/null || echo 'workspace ready')"
