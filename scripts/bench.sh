#!/usr/bin/env bash
# Runs every benchmark under bench/ (each prints a markdown table; see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
UV="$(command -v uv || python3 -c 'import sysconfig,os; print(os.path.join(sysconfig.get_path("scripts"),"uv"))')"
for script in bench/bench_*.py; do
  echo "== $script"
  "$UV" run --no-sync python "$script"
  echo
done
