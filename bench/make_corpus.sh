#!/usr/bin/env bash
# Builds B5's second corpus (SPEC 9) from text every Debian system with the project's
# packages carries: English manual pages, one firm per manual section, as the
# sub-directories of a corpus directory (client/legal/corpus.h, `--corpus_dir`):
#   man1 user commands, man3 library calls, man5 file formats, man7 overviews and
#   conventions, man8 administration.
# Each firm gets up to PAGES pages evenly spaced over its section's name-sorted list (so
# the choice does not depend on which letter a package starts with), each the page's troff
# source cut to PAGE_BYTES bytes; redirect stubs (".so other.1") are skipped. The result is
# a function of the installed man pages alone (LC_ALL=C sorting); the last line printed is
# a SHA-256 over the corpus, to say which one a report was measured on.
# This corpus was never used to choose any hyperparameter.
#
#   bench/make_corpus.sh OUT_DIR [PAGES=24] [PAGE_BYTES=3000]
set -euo pipefail
export LC_ALL=C
[ $# -ge 1 ] || { sed -n '2,15p' "$0"; exit 2; }
OUT=$1 PAGES=${2:-24} PAGE_BYTES=${3:-3000}
MAN=/usr/share/man
rm -rf "$OUT"
mkdir -p "$OUT"
for section in 1 3 5 7 8; do
  dir="$MAN/man$section"
  [ -d "$dir" ] || { echo "make_corpus.sh: $dir missing (man pages excluded?)" >&2; exit 1; }
  mapfile -t pages < <(find "$dir" -maxdepth 1 -type f -name '*.gz' | sort)
  n=${#pages[@]}
  [ "$n" -gt 0 ] || { echo "make_corpus.sh: no pages in $dir" >&2; exit 1; }
  mkdir -p "$OUT/man$section"
  take=$((n < PAGES ? n : PAGES))
  # The i-th pick starts at i·n/take and walks forward past stubs within its stretch.
  for ((i = 0; i < take; i++)); do
    for ((j = i * n / take; j < (i + 1) * n / take; j++)); do
      f=${pages[$j]}
      head=$(zcat "$f" 2>/dev/null | head -c 4 || true)
      [ "$head" = ".so " ] || [ -z "$head" ] || break
    done
    [ "$j" -lt $(((i + 1) * n / take)) ] || continue
    zcat "$f" | head -c "$PAGE_BYTES" >"$OUT/man$section/$(basename "$f" .gz)" || true
  done
  echo "man$section: $(ls "$OUT/man$section" | wc -l) of $n pages, $(cat "$OUT/man$section"/* | wc -c) bytes" >&2
done
(cd "$OUT" && find . -type f | sort | xargs cat | sha256sum | cut -d' ' -f1)
