# Sourced by the shell tests: one line per check, a count of failures, and the test's verdict.
#   source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/testing/check.sh"
#   check "what it proves" COMMAND...   # prints "ok   ..." or "FAIL ...", never exits
#   finish                              # prints the count; the test's last command
# Also sets ROOT (the workspace in the runfiles) and TMP (the test's scratch directory).

ROOT="$TEST_SRCDIR/$TEST_WORKSPACE"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0

check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}

finish() {  # the verdict: true when no check failed
  echo "$failures failure(s)"
  [ "$failures" -eq 0 ]
}
