#!/usr/bin/env bash
# Runs the whole test suite: format check, lint, strict types, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="$(python3 scripts/find_uv.py)"
run() { "$UV" run --no-sync "$@"; }

echo "== ruff format --check"; run ruff format --check libs services tests bench
echo "== ruff check";          run ruff check libs services tests bench
echo "== mypy (strict)";       run mypy libs/*/src services/*/src

# Two pytest processes side by side: the multi-site tests (about a third of the suite's time,
# most of it spent waiting for brokers to go down and come back, e.g. a hub held down for 60 s)
# beside everything else. Each gets its own port range below the kernel's ephemeral range
# (libs/devtools ports.py), so the two never hand out the same port.
SIDE=tests/test_multisite.py
side_log="$(mktemp)"
trap 'rm -f "$side_log"' EXIT
echo "== pytest ($SIDE runs beside the rest; its output follows the rest's)"
PROXBUS_TEST_PORT_RANGE=20000-25999 \
  run pytest -q -p no:cacheprovider "$@" "$SIDE" >"$side_log" 2>&1 &
side_pid=$!
main_status=0
PROXBUS_TEST_PORT_RANGE=26000-31999 \
  run pytest -q -p no:cacheprovider "$@" --ignore="$SIDE" libs services tests || main_status=$?
side_status=0
wait "$side_pid" || side_status=$?
echo "== pytest $SIDE"
cat "$side_log"
echo "== pytest exit codes: rest $main_status, $SIDE $side_status"
# pytest's 5 means "no tests collected": fine for one of the two (e.g. -k syslog selects none
# of the multi-site tests), a failure when neither collected a test.
for s in "$main_status" "$side_status"; do
  if [ "$s" -ne 0 ] && [ "$s" -ne 5 ]; then exit "$s"; fi
done
if [ "$main_status" -eq 5 ] && [ "$side_status" -eq 5 ]; then exit 5; fi
exit 0
