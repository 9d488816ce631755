#!/usr/bin/env bash
# Checks that every C++ and proto file tracked by git is formatted as .clang-format says
# (Google style, 100 columns). Prints the files that are not and exits 1 if there are any;
# `tools/check_format.sh --fix` formats them in place instead. Run by tests/run_all.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format-14 >/dev/null; then
  echo "check_format: clang-format-14 is not installed (deploy/install-deps.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cc' '*.h' '*.proto' | grep -v '^third_party/')
if [ "${1:-}" = "--fix" ]; then
  clang-format-14 -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format-14 --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ "${#bad[@]}" -gt 0 ]; then
  printf 'check_format: not formatted (run tools/check_format.sh --fix):\n' >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
