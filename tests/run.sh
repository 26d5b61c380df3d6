#!/usr/bin/env bash
# Runs the whole test suite with `deno test` and ends with one line, alone:
#   N passed, N failed[, N skipped]
# Deno's own summary ("ok | 12 passed (3 steps) | 0 failed | 1 ignored") is read and
# restated; a run that crashes before its summary counts as failed.
set -uo pipefail
DENO=${DENO:-deno}
mkdir -p .test-artifacts
log=.test-artifacts/test.log
"$DENO" test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -1)
if [ -z "$summary" ]; then
  echo "tests: deno test ended (exit $status) without a summary"
  echo "0 passed, 1 failed"
  exit 1
fi
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
skipped=0
grep -qE '[0-9]+ ignored' <<<"$summary" && skipped=$(sed -E 's/.*\| ([0-9]+) ignored.*/\1/' <<<"$summary")
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
