#!/bin/sh
# Alternates commitfloor and sidebyside runs cell by cell, so both see the
# same machine, then prints the per-cell ratios (floor/reference,
# ours/floor, ours/reference). Run from the interop directory:
#
#	cmd/commitfloor/interleave.sh [reps] [out-dir]
#
# Cells: bolt and wal, 1 and 16 clients, and mem at 1 client (CELLS
# overrides, e.g. CELLS="wal:1 wal:16 wal:128"); 3 s windows after 1 s
# of warm-up.
set -e
reps=${1:-3}
out=${2:-$(mktemp -d)}
cells=${CELLS:-"bolt:1 bolt:16 wal:1 wal:16 mem:1"}
mkdir -p "$out"
go build -o "$out/commitfloor" ./cmd/commitfloor
go build -o "$out/sidebyside" ./cmd/sidebyside
for rep in $(seq 1 "$reps"); do
	for cell in $cells; do
		store=${cell%:*}
		clients=${cell#*:}
		echo "rep $rep, $store, $clients clients, load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" >&2
		"$out/commitfloor" -stores "$store" -clients "$clients" -duration 3s -warmup 1s -json "$out/floor.jsonl" >/dev/null
		"$out/sidebyside" -modes throughput -stores "$store" -clients "$clients" -reps 1 -duration 3s -warmup 1s \
			-quiet -json "$out/one.jsonl" >/dev/null
		cat "$out/one.jsonl" >>"$out/sidebyside.jsonl"
	done
done
"$out/commitfloor" -ratios "$out/floor.jsonl,$out/sidebyside.jsonl"
echo "JSON lines in $out" >&2
