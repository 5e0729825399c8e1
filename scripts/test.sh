#!/usr/bin/env bash
# Runs the whole test suite: format check, lint, strict types, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="$(python3 scripts/find_uv.py)"
run() { "$UV" run --no-sync "$@"; }

echo "== ruff format --check"; run ruff format --check libs services tests bench
echo "== ruff check";          run ruff check libs services tests bench
echo "== mypy (strict)";       run mypy libs/*/src services/*/src
echo "== pytest"
status=0
run pytest -q -p no:cacheprovider "$@" libs services tests || status=$?
# pytest's 5 means "no tests collected": that is a failure here, not a pass.
exit "$status"
