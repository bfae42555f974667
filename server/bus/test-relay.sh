#!/bin/bash
# Runs the bus integration test (test-relay.c) against a throwaway PostgreSQL and nats-server
# started in a temporary folder and stopped on exit, whatever happens.
#   test-relay.sh TEST-BINARY SERVICES.SH
# The test stops and restarts nats-server through "$BUS_TEST_SVC stop|start", which calls
# this script again as: test-relay.sh ctl SERVICES.SH DIR PORT stop|start
set -uo pipefail

if [ "${1:-}" = ctl ]; then
	# shellcheck source=/dev/null
	. "$2" || exit 1
	case $5 in
	stop) svc_nats_stop "$3" ;;
	start) svc_nats_start "$3" "$4" ;;
	*) echo "test-relay.sh: unknown action $5" >&2; exit 2 ;;
	esac
	exit
fi

bin=${1:?usage: test-relay.sh TEST-BINARY SERVICES.SH}
services=${2:?usage: test-relay.sh TEST-BINARY SERVICES.SH}
# shellcheck source=/dev/null
. "$services" || exit 1

if ! command -v nats-server >/dev/null; then
	echo "SKIP: nats-server is not installed" >&2
	exit 77
fi
if ! _svc_pg_bindir >/dev/null 2>&1; then
	echo "SKIP: PostgreSQL 15 server binaries are not installed" >&2
	exit 77
fi

dir=$(mktemp -d /tmp/bus-relay.XXXXXX) || exit 1
cleanup()
{
	svc_nats_stop "$dir"
	svc_pg_destroy "$dir"
	rm -rf -- "$dir"
}
trap cleanup EXIT

svc_pg_start "$dir" || exit 1
port=$(svc_free_port) || exit 1
svc_nats_start "$dir" "$port" || exit 1

export BUS_TEST_SVC="$0 ctl $services $dir $port"
"$bin"
