#!/usr/bin/env bash
# Checks that the PostgreSQL of scripts/lib/services.sh (the quickstart's and the tests')
# is closed to other local users: started as root like scripts/quickstart (data and socket
# under a folder of the build tree, as state/ under a checkout, and with TCP on loopback),
# the unprivileged user `nobody` can neither reach the socket nor log in over TCP, nor read
# the password file, so it cannot run SQL (COPY ... TO PROGRAM ran commands as postgres
# when the socket was open and authentication was "trust"). The caller still connects with
# the DSN, also as root without CAP_DAC_OVERRIDE (as trstctl runs once its egress guard is
# armed), and the password shows up in no log. The same holds for a folder postgres cannot
# traverse (a clone under /root: the /tmp fallback), for a cluster made before there was a
# password, which gets one on its next start, and for a cluster handed to another client
# user (SVC_PG_CLIENT, as the pod test runs trstctl as 65532): that user gets in, nobody not.
#
# Needs root (to start PostgreSQL as postgres and to act as nobody); exits 77 otherwise.
# Usage: test-pg-access.sh [BUILD_DIR]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib/services.sh
. "$here/../../scripts/lib/services.sh"

skip()
{
	echo "SKIP: $*"
	exit 77
}

fail()
{
	echo "FAIL: $*" >&2
	exit 1
}

ok()
{
	echo "ok - $*"
}

[ "$(id -u)" -eq 0 ] || skip "needs root (PostgreSQL runs as postgres; the checks act as nobody)"
for tool in psql pg_isready runuser capsh setpriv; do
	command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps)"
done
_svc_pg_bindir >/dev/null 2>&1 || skip "PostgreSQL 15 server binaries are not installed"
id postgres >/dev/null 2>&1 || skip "there is no postgres user to run PostgreSQL as root"
id nobody >/dev/null 2>&1 || skip "there is no nobody user to try the server as"

base=${1:-}
[ -n "$base" ] && [ -d "$base" ] || base=$(mktemp -d /tmp/test-pg-access.XXXXXX)
base=$(cd "$base" && pwd -P)
tmp=$(mktemp -d "$base/test-pg-access.XXXXXX")
dirs=()
cleanup()
{
	local d
	for d in "${dirs[@]}"; do
		svc_pg_destroy "$d" || true
	done
	rm -rf -- "$tmp" "${d3:-}"
}
trap cleanup EXIT

as_nobody()
{
	(cd / && runuser -u nobody -- "$@")
}

# The password of the cluster in $1, to look for where it must not be.
password_of()
{
	local line
	IFS= read -r line <"$1/pgpass"
	printf '%s' "${line##*:}"
}

# check_closed DIR PORT: the cluster started in DIR (TCP on PORT) admits its caller only.
check_closed()
{
	local dir=$1 port=$2 dsn sock pw out log
	dsn=$(svc_pg_dsn "$dir")
	sock=$(readlink -f -- "$dir/pgsock")
	pw=$(password_of "$dir")
	[ ${#pw} -eq 48 ] || fail "the password in $dir/pgpass is not 48 hex digits"
	[ "$(stat -c %a -- "$dir/pgpass")" = 600 ] || fail "$dir/pgpass is not mode 0600"
	[[ $dsn != *"$pw"* ]] || fail "the DSN holds the password"

	# The caller: with the DSN, also over TCP with the password file.
	[ "$(psql "$dsn" -wXAtc 'SELECT 1')" = 1 ] || fail "the DSN does not connect"
	[ "$(psql "host=127.0.0.1 port=$port dbname=trstctl user=postgres passfile=$dir/pgpass" \
		-wXAtc 'SELECT 2')" = 2 ] || fail "TCP with the password does not connect"
	# ... and as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, like trstctl once armed.
	out=$(capsh --drop=cap_dac_override,cap_dac_read_search -- \
		-c 'exec psql "$0" -wXAtc "SELECT 3"' "$dsn" 2>&1) ||
		fail "root without CAP_DAC_OVERRIDE cannot connect: $out"
	[ "$out" = 3 ] || fail "root without CAP_DAC_OVERRIDE: $out"

	# nobody: no way through the socket, none over TCP, no password to read.
	as_nobody test -x "$sock" && fail "nobody can enter the socket folder $sock"
	as_nobody test -r "$dir/pgpass" && fail "nobody can read $dir/pgpass"
	if out=$(as_nobody psql "host=$sock port=$port dbname=trstctl user=postgres" -wXAtc \
		"COPY (SELECT 1) TO PROGRAM 'id'" 2>&1); then
		fail "nobody ran COPY ... TO PROGRAM through the socket: $out"
	fi
	[[ $out == *"Permission denied"* ]] || fail "nobody on the socket: unexpected refusal: $out"
	if out=$(as_nobody psql "$dsn" -wXAtc 'SELECT 1' 2>&1); then
		fail "nobody connected with the DSN: $out"
	fi
	if out=$(as_nobody psql "host=127.0.0.1 port=$port dbname=trstctl user=postgres" \
		-wXAtc "COPY (SELECT 1) TO PROGRAM 'id'" 2>&1); then
		fail "nobody ran COPY ... TO PROGRAM over TCP: $out"
	fi
	[[ $out == *"no password supplied"* ]] || fail "nobody over TCP: unexpected refusal: $out"
	if out=$(as_nobody env PGPASSWORD=postgres psql \
		"host=127.0.0.1 port=$port dbname=trstctl user=postgres" -wXAtc 'SELECT 1' 2>&1); then
		fail "nobody logged in over TCP with a guessed password"
	fi
	[[ $out == *"password authentication failed"* ]] ||
		fail "nobody with a wrong password: unexpected refusal: $out"

	# The password is in no log and in no file of the data folder but the password file.
	log=$(readlink -f -- "$dir/pg")/postgres.log
	[ -f "$log" ] || fail "no server log at $log"
	if grep -rqF -- "$pw" "$(readlink -f -- "$dir/pg")" "$sock"; then
		fail "the password appears under the data or the socket folder"
	fi
}

# --- a folder like state/ under a checkout the postgres user can reach -----------------------
d1=$tmp/state
dirs+=("$d1")
port=$(svc_free_port)
svc_pg_start "$d1" "$port" || fail "svc_pg_start $d1"
case $TRSTCTL_POSTGRES_DSN in
"host=$d1/pgsock port=$port dbname=trstctl user=postgres passfile=$d1/pgpass") ;;
"host=/tmp/trstctl-svc."*" port=$port dbname=trstctl user=postgres passfile=$d1/pgpass") ;;
*) fail "unexpected DSN: $TRSTCTL_POSTGRES_DSN" ;;
esac
check_closed "$d1" "$port"
ok "quickstart-style cluster: nobody cannot connect (socket or TCP), the caller can"

# --- a folder postgres cannot traverse (a clone under /root): the /tmp fallback --------------
locked=$tmp/locked
mkdir -m 0700 "$locked"
d2=$locked/clone/state
mkdir -p "$d2"
dirs+=("$d2")
port2=$(svc_free_port)
svc_pg_start "$d2" "$port2" || fail "svc_pg_start $d2"
[ -L "$d2/pgsock" ] || fail "expected $d2/pgsock to be a link to a /tmp folder"
[ "$(stat -c '%U:%G %a' -- "$(readlink -f -- "$d2/pgsock")")" = "postgres:root 710" ] ||
	fail "the /tmp socket folder is not postgres:root 0710"
check_closed "$d2" "$port2"
ok "behind a 0700 folder (the /tmp fallback): the same"

# --- a cluster made before there was a password gets one --------------------------------------
svc_pg_stop "$d1" || fail "svc_pg_stop $d1"
old=$(password_of "$d1")
rm -f -- "$d1/pgpass"
# as an older services.sh left it: trust for everyone
printf 'local all all trust\nhost all all all trust\n' |
	runuser -u postgres -- tee "$(readlink -f -- "$d1/pg")/pg_hba.conf" >/dev/null
svc_pg_start "$d1" "$port" || fail "svc_pg_start of a cluster without a password"
[ -s "$d1/pgpass" ] && [ "$(password_of "$d1")" != "$old" ] || fail "no new password"
check_closed "$d1" "$port"
ok "a cluster from before passwords is given one and trusts no one"

# --- a cluster for a client that is another user (SVC_PG_CLIENT) -----------------------------
# (under /tmp: 65532 must reach the password file, whatever folder the build is in)
d3=$(mktemp -d /tmp/test-pg-access-client.XXXXXX)
chmod 0755 "$d3"
dirs+=("$d3")
port3=$(svc_free_port)
SVC_PG_CLIENT=65532:65532 svc_pg_start "$d3" "$port3" || fail "svc_pg_start $d3 for 65532"
out=$(cd / && setpriv --reuid 65532 --regid 65532 --clear-groups \
	psql "$(svc_pg_dsn "$d3")" -wXAtc 'SELECT 4' 2>&1) || fail "65532 cannot connect: $out"
[ "$out" = 4 ] || fail "65532: $out"
as_nobody test -x "$(readlink -f -- "$d3/pgsock")" && fail "nobody can enter the socket folder"
if out=$(as_nobody psql "$(svc_pg_dsn "$d3")" -wXAtc 'SELECT 1' 2>&1); then
	fail "nobody connected to the cluster of 65532"
fi
ok "a cluster handed to 65532 (SVC_PG_CLIENT) admits 65532, not nobody"

echo "all PostgreSQL access checks passed"
