#!/usr/bin/env bash
# `trstctl audit list|watch|verify` (through the test driver) against the PostgreSQL that
# db/run-with-pg.sh started: seeds records, lists them, tampers with a record with psql and
# expects verify to name it and exit 1, then restores it.
set -uo pipefail
drv=$1
[ -n "${TRSTCTL_POSTGRES_DSN:-}" ] || { echo "SKIP: no TRSTCTL_POSTGRES_DSN"; exit 77; }
command -v psql >/dev/null || { echo "SKIP: psql not installed"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
sql() { psql "$TRSTCTL_POSTGRES_DSN" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

"$drv" seed 25 || fail "seed"
out=$("$drv" audit list --after 20) || fail "list exit $?"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 5 ] || fail "list --after 20: $out"
printf '%s\n' "$out" | head -1 | grep -q '^21 .* cli.seeded ok actor=tok_cli tester resource=things/cli' ||
	fail "list line: $out"
out=$("$drv" audit list --limit 3 --json) || fail "list --json"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 3 ] || fail "list --limit 3: $out"
printf '%s\n' "$out" | head -1 | grep -q '"sequence":1,' || fail "json: $out"
out=$("$drv" audit list --type nomatch.) || fail "list --type"
[ -z "$out" ] || fail "type filter: $out"
"$drv" audit list --after x >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad --after must exit 2"
"$drv" audit frobnicate >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown command must exit 2"

out=$("$drv" audit verify) || fail "verify on a good chain: $out"
printf '%s\n' "$out" | grep -q '^ok: 25 records and 2 checkpoints verified' || fail "verify: $out"

sql "UPDATE audit_events SET actor = 'someone else' WHERE sequence = 13" || fail psql
out=$("$drv" audit verify); rc=$?
[ $rc -eq 1 ] || fail "tampered chain must exit 1, got $rc: $out"
printf '%s\n' "$out" | grep -q 'BROKEN at sequence 13' || fail "verify tampered: $out"
out=$("$drv" audit verify --json); [ $? -eq 1 ] || fail "json verify exit"
printf '%s\n' "$out" | grep -q '"first_bad_sequence":13' || fail "json verify: $out"
out=$("$drv" audit verify --from 1 --to 12) || fail "range before the tamper must verify: $out"
sql "UPDATE audit_events SET actor = 'tok_cli tester' WHERE sequence = 13" || fail psql
"$drv" audit verify >/dev/null || fail "restored chain must verify"
out=$("$drv" audit verify --from 1000 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "verify past the head: exit $rc, want 2 (a bad argument): $out"
printf '%s\n' "$out" | grep -q 'past the chain.s head' || fail "verify past the head: $out"

# watch: history then a live record, read from a pipe.
"$drv" audit watch --after 23 >"${TMPDIR:-/tmp}/audit-watch.$$" &
pid=$!
sleep 1
"$drv" seed 1 || fail "seed live"
for _ in $(seq 1 50); do
	[ "$(wc -l <"${TMPDIR:-/tmp}/audit-watch.$$")" -ge 3 ] && break
	sleep 0.1
done
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
seqs=$(cut -d' ' -f1 <"${TMPDIR:-/tmp}/audit-watch.$$" | tr '\n' ' ')
rm -f -- "${TMPDIR:-/tmp}/audit-watch.$$"
[ "$seqs" = "24 25 26 " ] || fail "watch: got '$seqs'"
echo "ok: audit cli"
