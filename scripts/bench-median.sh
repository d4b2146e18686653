#!/usr/bin/env bash
# Medians over several runs of scripts/bench-compare.sh: for each workload, the median (and
# the range) of encrypted sealdb's ops/s, of enc / plaintext, and of enc / best peer, and the
# medians of the two CPU-time ratios, read from each run's summary.md. The VM this project runs on is shared and one run can differ
# from the next by 40%, so a table from one run says little on its own.
#
#   scripts/bench-median.sh RUN_DIR...      (each holding a summary.md)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 RUN_DIR..." >&2; exit 2; }
for d in "$@"; do
  awk -v run="$d" -F'|' '
    /^\| ops\/s/ { sec = "ops"; next }
    /^\| ratio/  { sec = "ratio"; next }
    /^\| p99/ || /^$/ { sec = ""; next }
    /^\| -/ { next }
    sec == "ops"   { gsub(/ /, "", $2); gsub(/ /, "", $3); print $2, "enc_ops", $3 }
    sec == "ratio" { gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $4); gsub(/ /, "", $5);
                     gsub(/ /, "", $6); gsub(/ /, "", $7)
                     print $2, "enc_plain", $3; print $2, "enc_peer", $4; print $2, "peer", $5
                     print $2, "cpu_plain", $6; print $2, "cpu_peer", $7 }
  ' "$d/summary.md"
done | awk '
  { key = $1 SUBSEP $2; n[key]++; v[key, n[key]] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++rows] = $1 } }
  function med(k,   i, j, m, t, a) {
    m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    lo = a[1]; hi = a[m]
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    print "| workload | runs | enc ops/s median (range) | enc / plaintext median (range) | enc / best peer median (range) | best peer (runs) | CPU plain / enc | CPU best peer / enc |"
    print "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
    for (r = 1; r <= rows; r++) {
      w = order[r]
      m1 = med(w SUBSEP "enc_ops"); l1 = lo; h1 = hi
      m2 = med(w SUBSEP "enc_plain"); l2 = lo; h2 = hi
      m3 = med(w SUBSEP "enc_peer"); l3 = lo; h3 = hi
      delete cnt; peers = ""
      for (i = 1; i <= n[w SUBSEP "peer"]; i++) cnt[v[w SUBSEP "peer", i]]++
      for (p in cnt) peers = peers (peers == "" ? "" : ", ") p " " cnt[p]
      m4 = med(w SUBSEP "cpu_plain"); m5 = med(w SUBSEP "cpu_peer")
      printf "| %s | %d | %.0fk (%.0fk-%.0fk) | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %s | %.2f | %.2f |\n", w, n[w SUBSEP "enc_plain"], m1 / 1000, l1 / 1000, h1 / 1000, m2, l2, h2, m3, l3, h3, peers, m4, m5
    }
  }'
