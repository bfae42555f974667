#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL 15 (scripts/lib/services.sh) started in a
# temp folder, with TRSTCTL_POSTGRES_DSN in its environment; stops and removes it on exit.
#   run-with-pg.sh COMMAND [ARGS...]    exit status of COMMAND; 77 when PostgreSQL cannot start
#   run-with-pg.sh --ctl start|stop DIR used by tests (TRSTCTL_TEST_PG_CTL) to stop and restart
#                                       the server mid-test
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/services.sh
. "$here/../../scripts/lib/services.sh"

if [ "${1:-}" = --ctl ]; then
	case ${2:-} in
	start) svc_pg_start "$3" ;;
	stop) svc_pg_stop "$3" ;;
	*) echo "usage: $0 --ctl start|stop DIR" >&2; exit 2 ;;
	esac
	exit
fi
[ $# -ge 1 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

dir=$(mktemp -d /tmp/trstctl-db.XXXXXX) || exit 1
trap 'svc_pg_destroy "$dir"; rm -rf -- "$dir"' EXIT
trap 'exit 143' TERM INT HUP
if ! svc_pg_start "$dir" 2>"$dir/start.err"; then
	echo "SKIP: PostgreSQL cannot start here: $(tr '\n' ' ' <"$dir/start.err")"
	exit 77
fi
export TRSTCTL_TEST_PG_DIR=$dir
export TRSTCTL_TEST_PG_CTL="$here/run-with-pg.sh"
"$@"
rc=$?
exit $rc
