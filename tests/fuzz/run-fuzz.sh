#!/usr/bin/env bash
# Runs one libFuzzer target for a fixed number of inputs with a fixed seed, starting from its
# committed seed corpus, which it never writes to: libFuzzer adds what it finds to the first
# corpus folder it is given, so that is a scratch folder removed afterwards, and the seeds
# come second. A crash, leak or timeout fails the test; its input is kept under
# BUILD/tests/fuzz/artifacts/TARGET/ (once fixed, it joins the seeds: tests/fuzz/meson.build
# says how).
#
# Usage: run-fuzz.sh TARGET_EXE SEED_DIR RUNS [libFuzzer flags...]
set -uo pipefail

[ $# -ge 3 ] || { echo "usage: $0 TARGET_EXE SEED_DIR RUNS [flags...]" >&2; exit 2; }
exe=$1 seeds=$2 runs=$3
shift 3
[ -x "$exe" ] || { echo "FAIL: $exe is not built"; exit 1; }
[ -d "$seeds" ] && [ -n "$(ls -A -- "$seeds")" ] ||
	{ echo "FAIL: no seed corpus in $seeds"; exit 1; }

name=$(basename -- "$exe")
artifacts=$(cd "$(dirname -- "$exe")" && pwd -P)/artifacts/$name
mkdir -p -- "$artifacts" || exit 1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX") || exit 1
trap 'rm -rf -- "$scratch"' EXIT

# -error_exitcode: libFuzzer's default (77) is what meson reads as "skipped"
"$exe" -runs="$runs" -seed=1 -timeout=10 -error_exitcode=1 -timeout_exitcode=1 \
	-print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "$scratch" "$seeds"
rc=$?
if [ "$rc" -ne 0 ]; then
	echo "FAIL: $name found a failing input (kept in $artifacts/); reproduce with:"
	echo "  $exe $artifacts/<file>"
fi
exit "$rc"
