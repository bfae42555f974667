#!/usr/bin/env bash
# Checks scripts/lib/services.sh against the real PostgreSQL 15 and nats-server: start both in
# temporary folders, use them (a table survives a restart; NATS greets with JetStream on),
# check that start and stop are idempotent, and that nothing is left running afterwards.
# Cases: a 0700 mktemp folder (the postgres user must be let in), a folder the postgres user
# cannot reach with a path too long for a unix socket (the /tmp fallback), and a folder under
# the build tree (like state/ under the repository), with TCP on loopback.
#
# Usage: test-services.sh [BUILD_DIR]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib/services.sh
. "$here/../../scripts/lib/services.sh"

skip()
{
	echo "SKIP: $*"
	exit 77
}

for tool in psql pg_isready nats-server; do
	command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps)"
done
_svc_pg_bindir >/dev/null 2>&1 || skip "PostgreSQL 15 server binaries are not installed"
if [ "$(id -u)" -eq 0 ]; then
	command -v runuser >/dev/null || skip "runuser is missing (root must run PostgreSQL as postgres)"
	id postgres >/dev/null 2>&1 || skip "there is no postgres user to run PostgreSQL as root"
fi

fail()
{
	echo "FAIL: $*" >&2
	exit 1
}

ok()
{
	echo "ok - $*"
}

tmp=$(mktemp -d /tmp/test-services.XXXXXX)
dirs=()
cleanup()
{
	local d
	for d in "${dirs[@]}"; do
		svc_nats_stop "$d" || true
		svc_pg_destroy "$d" || true
	done
	rm -rf -- "$tmp"
	[ -z "${build_case:-}" ] || rm -rf -- "$build_case"
}
trap cleanup EXIT

# Processes whose command line mentions $1 (a folder of this test).
procs_under()
{
	local p
	for p in /proc/[0-9]*; do
		if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$1"; then
			echo "${p#/proc/}"
		fi
	done
}

nats_says_jetstream()
{
	local line
	line=$(exec 3<>"/dev/tcp/127.0.0.1/$1" && read -r -t 2 line <&3 && printf '%s' "$line")
	[[ $line == INFO* && $line == *'"jetstream":true'* ]]
}

# --- case 1: a 0700 temporary folder (mktemp -d), socket only ------------------------------
d1=$tmp
dirs+=("$d1")

svc_pg_start "$d1" || fail "svc_pg_start $d1"
[ "$TRSTCTL_POSTGRES_DSN" = "host=$d1/pgsock dbname=trstctl user=postgres passfile=$d1/pgpass" ] ||
	fail "unexpected DSN: $TRSTCTL_POSTGRES_DSN"
[ "$(svc_pg_dsn "$d1")" = "$TRSTCTL_POSTGRES_DSN" ] || fail "svc_pg_dsn disagrees with the export"
dsn1=$TRSTCTL_POSTGRES_DSN
psql "$dsn1" -Xq -v ON_ERROR_STOP=1 \
	-c 'CREATE TABLE svc_probe (n int PRIMARY KEY)' -c 'INSERT INTO svc_probe VALUES (42)' ||
	fail "psql cannot create a table in database trstctl"
[ "$(psql "$dsn1" -XAtc 'SHOW listen_addresses')" = "" ] || fail "PostgreSQL listens on TCP"
[ "$(psql "$dsn1" -XAtc 'SHOW fsync')" = on ] || fail "fsync is not on"
ok "PostgreSQL on a unix socket in a 0700 folder; table created"

pgpid=$(_svc_pg_pid "$d1/pg") || fail "no postmaster pid"
svc_pg_start "$d1" || fail "second svc_pg_start"
[ "$(_svc_pg_pid "$d1/pg")" = "$pgpid" ] || fail "second svc_pg_start restarted PostgreSQL"
ok "svc_pg_start is idempotent"

port=$(svc_free_port) || fail "svc_free_port"
[[ $port =~ ^[0-9]+$ ]] || fail "svc_free_port printed '$port'"
out=$(svc_nats_start "$d1" "$port" 2>&1) || fail "svc_nats_start: $out"
[ -z "$out" ] || fail "svc_nats_start is not quiet: $out"
svc_nats_start "$d1" "$port" || fail "svc_nats_start (for the export)"
[ "$TRSTCTL_NATS_URL" = "nats://127.0.0.1:$port" ] || fail "unexpected URL: $TRSTCTL_NATS_URL"
nats_says_jetstream "$port" || fail "nats-server on $port does not greet with JetStream on"
natspid=$(_svc_nats_pid "$d1") || fail "no nats-server pid"
svc_nats_start "$d1" "$port" || fail "second svc_nats_start"
[ "$(_svc_nats_pid "$d1")" = "$natspid" ] || fail "second svc_nats_start restarted nats-server"
ok "nats-server with JetStream on 127.0.0.1:$port; start is idempotent"

if svc_nats_start "$tmp/other" "$port" 2>/dev/null; then
	fail "a second nats-server on a taken port was reported as started"
fi
[ -z "$(procs_under "$tmp/other")" ] || fail "a failed nats start left a process"
ok "a taken port is refused and leaves nothing running"

svc_stop_all "$d1" || fail "svc_stop_all"
kill -0 "$pgpid" 2>/dev/null && fail "PostgreSQL (pid $pgpid) still runs after stop"
kill -0 "$natspid" 2>/dev/null && fail "nats-server (pid $natspid) still runs after stop"
[ ! -e "$d1/pgsock/.s.PGSQL.5432" ] || fail "the PostgreSQL socket is still there"
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && fail "port $port still answers"
[ -z "$(procs_under "$d1")" ] || fail "processes left under $d1: $(procs_under "$d1")"
svc_stop_all "$d1" || fail "svc_stop_all on stopped services"
svc_pg_stop "$tmp/never-started" || fail "svc_pg_stop on a folder never used"
svc_nats_stop "$tmp/never-started" || fail "svc_nats_stop on a folder never used"
ok "stop leaves nothing running and is idempotent"

svc_pg_start "$d1" || fail "svc_pg_start after stop"
[ "$(psql "$dsn1" -XAtc 'SELECT n FROM svc_probe')" = 42 ] || fail "the row did not survive a restart"
svc_pg_stop "$d1" || fail "svc_pg_stop"
ok "data survives a stop and start"

# --- case 2: unreachable for postgres and too long for a socket path -------------------------
locked=$tmp/locked
mkdir -m 0700 "$locked"
d2=$locked/$(printf 'x%.0s' $(seq 1 90))/svc
mkdir -p "$d2"
dirs+=("$d2")
svc_pg_start "$d2" || fail "svc_pg_start $d2"
if [ "$(id -u)" -eq 0 ]; then
	[ -L "$d2/pg" ] || fail "expected $d2/pg to be a symlink to a /tmp folder"
fi
[ -L "$d2/pgsock" ] || fail "expected $d2/pgsock (too long for a socket) to be a symlink"
real_sock=$(readlink "$d2/pgsock")
[ "$TRSTCTL_POSTGRES_DSN" = "host=$real_sock dbname=trstctl user=postgres passfile=$d2/pgpass" ] ||
	fail "unexpected DSN: $TRSTCTL_POSTGRES_DSN"
[ "$(psql "$TRSTCTL_POSTGRES_DSN" -XAtc 'SELECT 1')" = 1 ] || fail "cannot query in $d2"
svc_pg_destroy "$d2" || fail "svc_pg_destroy $d2"
[ ! -e "$real_sock" ] || fail "svc_pg_destroy left $real_sock"
[ ! -e "$d2/pgpass" ] || fail "svc_pg_destroy left $d2/pgpass"
[ -z "$(procs_under "$real_sock")" ] || fail "processes left under $real_sock"
ok "fallback to /tmp for an unreachable folder and a long socket path"

# --- case 3: under the build tree, with TCP on loopback ----------------------------------------
if [ -n "${1:-}" ] && [ -d "$1" ]; then
	build_case=$(cd "$1" && pwd -P)/test-services.$$
	dirs+=("$build_case")
	pgport=$(svc_free_port) || fail "svc_free_port"
	svc_pg_start "$build_case" "$pgport" || fail "svc_pg_start $build_case $pgport"
	# in the build tree, or (a checkout under a folder the postgres user cannot traverse,
	# such as a clone under /root) in the /tmp fallback folder of case 2
	case $TRSTCTL_POSTGRES_DSN in
	"host=$build_case/pgsock port=$pgport dbname=trstctl user=postgres passfile=$build_case/pgpass") ;;
	"host=/tmp/trstctl-svc."*" port=$pgport dbname=trstctl user=postgres passfile=$build_case/pgpass")
		[ "$(id -u)" -eq 0 ] && [ -L "$build_case/pg" ] ||
			fail "a /tmp fallback without the $build_case/pg link: $TRSTCTL_POSTGRES_DSN" ;;
	*) fail "unexpected DSN: $TRSTCTL_POSTGRES_DSN" ;;
	esac
	[ "$(psql "$TRSTCTL_POSTGRES_DSN" -XAtc 'SELECT 3')" = 3 ] || fail "cannot query $build_case"
	[ "$(psql "host=127.0.0.1 port=$pgport dbname=trstctl user=postgres passfile=$build_case/pgpass" \
		-wXAtc 'SELECT 2')" = 2 ] ||
		fail "PostgreSQL does not answer on 127.0.0.1:$pgport"
	svc_pg_destroy "$build_case" || fail "svc_pg_destroy $build_case"
	(exec 3<>"/dev/tcp/127.0.0.1/$pgport") 2>/dev/null && fail "port $pgport still answers"
	ok "PostgreSQL under the build tree, also on 127.0.0.1:$pgport"
fi

[ -z "$(procs_under "$tmp")" ] || fail "processes left under $tmp: $(procs_under "$tmp")"
echo "all services checks passed"
