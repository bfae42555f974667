# shellcheck shell=bash
#
# Throwaway PostgreSQL 15 and NATS (JetStream) for scripts/quickstart and the tests.
#
# Source this file, then:
#   svc_pg_start DIR [PORT]   initdb (once) and start PostgreSQL with its data in DIR/pg and its
#                             unix socket in DIR/pgsock; no TCP unless PORT is given (then it
#                             also listens on 127.0.0.1:PORT). The superuser's password is
#                             DIR/pgpass (a libpq password file, mode 0600). Creates database
#                             `trstctl` and exports TRSTCTL_POSTGRES_DSN.
#   svc_pg_dsn DIR            prints the DSN of the server started in DIR: the socket, and
#                             passfile=DIR/pgpass (the file, never the password).
#   svc_pg_stop DIR           stops it (fast shutdown); the data stays.
#   svc_pg_destroy DIR        stops it and removes its data, socket folder and password.
#   svc_nats_start DIR PORT   starts nats-server -js on 127.0.0.1:PORT, store in DIR/nats;
#                             exports TRSTCTL_NATS_URL.
#   svc_nats_stop DIR         stops it; the store stays.
#   svc_free_port             prints a free loopback TCP port.
#   svc_stop_all DIR          svc_nats_stop + svc_pg_stop; meant for `trap ... EXIT`.
#
# Every function is idempotent (start on a running service re-exports its address; stop on a
# stopped or never-started service does nothing), prints nothing on success, prints one
# `services: ...` line to stderr on failure and returns non-zero. Functions never call `exit`
# and never change the caller's shell options, so they are safe under `set -euo pipefail` and
# inside EXIT traps.
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (via
# runuser); as any other user it runs as that user. Durability stays as in production: fsync
# and synchronous_commit keep their defaults (on); only initdb itself skips its fsync pass.
#
# Other local users cannot use the server. Its socket folder is open only to the server's
# user and the caller: 0700 when both are the caller, else owned by postgres with the
# caller's group and mode 0710 (so that a root client which dropped CAP_DAC_OVERRIDE, as
# trstctl does once its egress guard is armed, still reaches the socket). Every connection,
# over the socket or TCP, authenticates with scram-sha-256 as `postgres` with a random
# 192-bit password that is generated into DIR/pgpass (readable by the caller alone) and
# reaches clients through the DSN's passfile=, never through an argument, a variable or a
# log. A cluster made before there was a password (no DIR/pgpass) gets one set in
# single-user mode on its next start. When the client is another user than the caller (a
# test that drops trstctl to an unprivileged uid), root sets SVC_PG_CLIENT=UID:GID for
# svc_pg_start: the socket folder then gets group GID and the password file owner UID.

# Where the PostgreSQL 15 server binaries live (Debian keeps them out of PATH).
_svc_pg_bindir()
{
	local d
	for d in "${SVC_PG_BINDIR:-}" /usr/lib/postgresql/15/bin; do
		if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	echo "services: PostgreSQL 15 server binaries not found (install postgresql-15," \
		"or set SVC_PG_BINDIR)" >&2
	return 1
}

_svc_err()
{
	echo "services: $*" >&2
	return 1
}

# Absolute path of $1 without requiring it to exist.
_svc_abspath()
{
	realpath -m -- "$1"
}

# Runs a command as the user that owns the PostgreSQL cluster: `postgres` when we are root,
# ourselves otherwise. It runs from / so that a cwd the postgres user cannot enter (for
# example /root) gives no "could not change directory" noise.
_svc_as_pg()
{
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

_svc_pg_user()
{
	if [ "$(id -u)" -eq 0 ]; then
		echo postgres
	else
		id -un
	fi
}

# Makes DIR/NAME a folder the PostgreSQL user owns and can reach, and prints its real path.
#
# Two things can stop PostgreSQL from using a folder under DIR:
#  - the postgres user cannot traverse one of DIR's parents (mktemp -d makes 0700 folders;
#    /root is 0700). We grant o+x (traverse, not list) on DIR itself when we own it, since DIR
#    is the folder the caller handed us for these services; we never touch its parents.
#  - a unix socket path is limited to 107 bytes (sun_path), and PostgreSQL needs
#    DIR/pgsock/.s.PGSQL.<port>.lock to fit.
# In either case the folder is made under /tmp instead (trstctl-svc.XXXXXX, which the postgres
# user can reach) and DIR/NAME becomes a symlink to it. Clients must then use the real path
# (svc_pg_dsn prints it), since libpq checks the length of the path it is given.
_svc_pg_folder()
{
	local dir=$1 name=$2 maxlen=$3 path real user
	path=$dir/$name
	user=$(_svc_pg_user)

	if [ -L "$path" ]; then
		real=$(readlink -- "$path")
		if [ -d "$real" ]; then
			printf '%s\n' "$real"
			return 0
		fi
		# The /tmp target is gone (reboot, tmp cleaner): start afresh.
		rm -f -- "$path"
	fi

	if [ "$(id -u)" -eq 0 ] && ! _svc_as_pg test -x "$dir" 2>/dev/null &&
		[ "$(stat -c %u -- "$dir")" -eq 0 ]; then
		chmod o+x -- "$dir"
	fi

	if [ ${#path} -le "$maxlen" ] && _svc_as_pg test -x "$dir" 2>/dev/null; then
		mkdir -p -- "$path" || return 1
		chmod 0700 -- "$path" || return 1
		if [ "$(id -u)" -eq 0 ]; then
			chown "$user": -- "$path" || return 1
		fi
		printf '%s\n' "$path"
		return 0
	fi

	real=$(mktemp -d /tmp/trstctl-svc.XXXXXX) || return 1
	chmod 0700 -- "$real" || return 1
	if [ "$(id -u)" -eq 0 ]; then
		chown "$user": -- "$real" || return 1
	fi
	ln -s -- "$real" "$path" || return 1
	printf '%s\n' "$real"
}

# The libpq password file of the cluster in DIR $1 (*:*:*:postgres:<password>).
_svc_pg_passfile()
{
	printf '%s/pgpass\n' "$1"
}

# A new password: 48 hex digits (192 bits) that need no quoting in SQL or a password file.
_svc_pg_newpass()
{
	od -An -tx1 -N24 /dev/urandom | tr -d ' \n'
}

# The password in password file $1.
_svc_pg_pass()
{
	local line
	IFS= read -r line <"$1" && [ -n "${line##*:}" ] && printf '%s' "${line##*:}"
}

# Writes password $2 into password file $1, mode 0600, replacing it atomically.
_svc_pg_write_pass()
{
	local tmp
	tmp=$(mktemp -- "$1.XXXXXX") || return 1
	if ! { chmod 0600 -- "$tmp" && printf '*:*:*:postgres:%s\n' "$2" >"$tmp" &&
		mv -f -- "$tmp" "$1"; }; then
		rm -f -- "$tmp"
		return 1
	fi
}

# Sets the superuser's password of the stopped cluster in data folder $1 to the one in
# password file $2, in single-user mode (no socket, no client), with binaries from $3. The
# password goes through a pipe; no statement is logged, so it reaches no log.
_svc_pg_set_password()
{
	local out pw line
	pw=$(_svc_pg_pass "$2") || return 1
	if ! out=$(printf "ALTER ROLE postgres PASSWORD '%s';\n" "$pw" |
		_svc_as_pg "$3/postgres" --single -D "$1" -c log_min_error_statement=panic \
			-c log_statement=none postgres 2>&1); then
		# (filtered here, not by grep: the password must not be an argument of a command)
		while IFS= read -r line; do
			[[ $line == *"$pw"* ]] || printf '%s\n' "$line"
		done <<<"$out" | tail -n 20 >&2
		return 1
	fi
}

# A libpq connection-string value: as it is when plain, else quoted.
_svc_dsn_value()
{
	local v=$1
	if [ -n "$v" ] && [[ $v != *[[:space:]\'\\]* ]]; then
		printf '%s' "$v"
		return
	fi
	v=${v//\\/\\\\}
	v=${v//\'/\\\'}
	printf "'%s'" "$v"
}

# The pid recorded by a running postmaster for data folder $1, or nothing.
_svc_pg_pid()
{
	local pidfile=$1/postmaster.pid pid
	[ -r "$pidfile" ] || return 1
	read -r pid <"$pidfile" || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 1
	printf '%s\n' "$pid"
}

svc_pg_dsn()
{
	local dir sock port=""
	[ $# -ge 1 ] || _svc_err "usage: svc_pg_dsn DIR" || return
	dir=$(_svc_abspath "$1")
	[ -e "$dir/pgsock" ] || _svc_err "no PostgreSQL socket folder in $dir" || return
	sock=$(readlink -f -- "$dir/pgsock")
	[ -r "$dir/pg.port" ] && read -r port <"$dir/pg.port"
	printf 'host=%s%s dbname=trstctl user=postgres passfile=%s\n' "$(_svc_dsn_value "$sock")" \
		"${port:+ port=$port}" "$(_svc_dsn_value "$(_svc_pg_passfile "$dir")")"
}

svc_pg_start()
{
	local dir bindir data sock port="${2:-}" listen="''" out user pass new_pass="" pwfile
	local sock_mode=0700 rc client_uid client_gid
	[ $# -ge 1 ] || _svc_err "usage: svc_pg_start DIR [PORT]" || return
	bindir=$(_svc_pg_bindir) || return
	dir=$(_svc_abspath "$1")
	mkdir -p -- "$dir" || _svc_err "cannot create $dir" || return
	user=$(_svc_pg_user)
	client_uid=$(id -u)
	client_gid=$(id -g)
	if [ -n "${SVC_PG_CLIENT:-}" ]; then
		[[ $SVC_PG_CLIENT =~ ^([0-9]+):([0-9]+)$ ]] && [ "$(id -u)" -eq 0 ] ||
			_svc_err "SVC_PG_CLIENT='$SVC_PG_CLIENT': want UID:GID, and only as root" ||
			return
		client_uid=${BASH_REMATCH[1]}
		client_gid=${BASH_REMATCH[2]}
	fi

	if [ -n "$port" ]; then
		[[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
			_svc_err "svc_pg_start: bad port '$port'" || return
		listen="'127.0.0.1'"
	fi

	data=$(_svc_pg_folder "$dir" pg 4096) || _svc_err "cannot prepare $dir/pg" || return
	# 107 bytes of sun_path, minus "/.s.PGSQL.65535.lock".
	sock=$(_svc_pg_folder "$dir" pgsock 86) || _svc_err "cannot prepare $dir/pgsock" || return
	# Only the server's user and the client may reach the socket (see the head of this
	# file). As root the server is postgres: the folder gets the client's group (root's,
	# so that root without CAP_DAC_OVERRIDE, as trstctl runs once its guard is armed, still
	# gets in), and the socket itself is left open (0777): the folder shuts out the rest.
	if [ "$(id -u)" -eq 0 ]; then
		chown "$user:$client_gid" -- "$sock" && chmod 0710 -- "$sock" || return
		sock_mode=0777
	else
		chmod 0700 -- "$sock" || return
	fi

	# The password: made once; a cluster from before there was one gets it now.
	pass=$(_svc_pg_passfile "$dir")
	if [ ! -s "$pass" ]; then
		_svc_pg_write_pass "$pass" "$(_svc_pg_newpass)" ||
			_svc_err "cannot write the password file $pass" || return
		new_pass=1
	fi
	if [ "$(id -u)" -eq 0 ]; then
		chown "$client_uid" -- "$pass" || return
	fi
	if [ -n "$new_pass" ] && [ -f "$data/PG_VERSION" ]; then
		if ! svc_pg_stop "$dir" || ! _svc_pg_set_password "$data" "$pass" "$bindir"; then
			rm -f -- "$pass"
			_svc_err "cannot set the password of the cluster in $data"
			return
		fi
	fi

	if _svc_pg_pid "$data" >/dev/null; then
		export TRSTCTL_POSTGRES_DSN
		TRSTCTL_POSTGRES_DSN=$(svc_pg_dsn "$dir") || return
		return 0
	fi

	if [ ! -f "$data/PG_VERSION" ]; then
		# initdb reads the password from a file: one in the socket folder, which only the
		# server's user and the caller can enter, removed right after.
		if ! pwfile=$(mktemp -- "$sock/.initdb-pw.XXXXXX") ||
			! _svc_pg_pass "$pass" >"$pwfile" ||
			{ [ "$(id -u)" -eq 0 ] && ! chown "$user" -- "$pwfile"; }; then
			rm -f -- "${pwfile:-}"
			_svc_err "cannot prepare initdb in $data"
			return
		fi
		if out=$(_svc_as_pg "$bindir/initdb" -D "$data" -A scram-sha-256 -U postgres \
				--pwfile="$pwfile" --no-sync -E UTF8 --locale=C.UTF-8 2>&1); then
			rc=0
		else
			rc=$?
		fi
		rm -f -- "$pwfile"
		if [ "$rc" -ne 0 ]; then
			printf '%s\n' "$out" | tail -n 20 >&2
			_svc_err "initdb failed in $data"
			return
		fi
		echo "include_if_exists = 'trstctl-services.conf'" >>"$data/postgresql.conf"
	fi

	# Rewritten on every start so that the folder can move and the port can change.
	if ! _svc_as_pg tee "$data/trstctl-services.conf" >/dev/null <<-EOF
		# Written by scripts/lib/services.sh on every start.
		listen_addresses = $listen
		port = ${port:-5432}
		unix_socket_directories = '$sock'
		unix_socket_permissions = $sock_mode
		EOF
	then
		_svc_err "cannot write $data/trstctl-services.conf"
		return
	fi
	# Extra settings for one run (tools/bench/run-issue-bench --pg-statements), one per line.
	if [ -n "${TRSTCTL_SVC_PG_CONF:-}" ] &&
		! printf '%s\n' "$TRSTCTL_SVC_PG_CONF" |
		_svc_as_pg tee -a "$data/trstctl-services.conf" >/dev/null; then
		_svc_err "cannot write $data/trstctl-services.conf"
		return
	fi
	# Also rewritten on every start, so that a cluster from before passwords trusts no one.
	# Who reaches the server at all is settled above (socket folder, listen_addresses).
	if ! _svc_as_pg tee "$data/pg_hba.conf" >/dev/null <<-EOF
		# Written by scripts/lib/services.sh on every start: every connection needs the
		# password (scram-sha-256; the libpq password file next to the data folder).
		local all all scram-sha-256
		host  all all all scram-sha-256
		EOF
	then
		_svc_err "cannot write $data/pg_hba.conf"
		return
	fi
	if [ -n "$port" ]; then
		echo "$port" >"$dir/pg.port"
	else
		rm -f -- "$dir/pg.port"
	fi

	# A postmaster.pid left by a killed server makes pg_ctl wait and then fail; PostgreSQL
	# itself checks whether that pid still runs, so a stale file only costs a log line.
	if ! out=$(_svc_as_pg "$bindir/pg_ctl" -D "$data" -l "$data/postgres.log" -w -t 60 \
			-s start 2>&1); then
		printf '%s\n' "$out" >&2
		tail -n 20 "$data/postgres.log" >&2 2>/dev/null
		_svc_err "PostgreSQL did not start (data $data, log $data/postgres.log)"
		return
	fi

	if ! pg_isready -q -h "$sock" -p "${port:-5432}" -t 30; then
		_svc_err "PostgreSQL started but does not answer on $sock"
		return
	fi

	if [ "$(PGPASSFILE=$pass psql -h "$sock" -p "${port:-5432}" -U postgres -d postgres -wXAtq \
			-c "SELECT 1 FROM pg_database WHERE datname = 'trstctl'" 2>&1)" != 1 ]; then
		if ! out=$(PGPASSFILE=$pass psql -h "$sock" -p "${port:-5432}" -U postgres \
				-d postgres -wXq -v ON_ERROR_STOP=1 -c 'CREATE DATABASE trstctl' 2>&1); then
			printf '%s\n' "$out" >&2
			_svc_err "cannot create database trstctl"
			return
		fi
	fi

	export TRSTCTL_POSTGRES_DSN
	TRSTCTL_POSTGRES_DSN=$(svc_pg_dsn "$dir") || return
	return 0
}

svc_pg_stop()
{
	local dir data bindir pid
	[ $# -ge 1 ] || _svc_err "usage: svc_pg_stop DIR" || return
	dir=$(_svc_abspath "$1")
	[ -e "$dir/pg" ] || return 0
	data=$(readlink -f -- "$dir/pg")
	pid=$(_svc_pg_pid "$data") || return 0
	bindir=$(_svc_pg_bindir) || return

	_svc_as_pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 -s stop >/dev/null 2>&1
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	# Fast shutdown did not finish: the data is throwaway, but say so.
	kill -KILL "$pid" 2>/dev/null
	sleep 0.2
	if kill -0 "$pid" 2>/dev/null; then
		_svc_err "PostgreSQL (pid $pid, data $data) does not stop"
		return
	fi
	echo "services: PostgreSQL (data $data) needed SIGKILL" >&2
	return 0
}

svc_pg_destroy()
{
	local dir name real
	[ $# -ge 1 ] || _svc_err "usage: svc_pg_destroy DIR" || return
	dir=$(_svc_abspath "$1")
	svc_pg_stop "$dir" || return
	rm -f -- "$(_svc_pg_passfile "$dir")"
	for name in pg pgsock; do
		if [ -L "$dir/$name" ]; then
			real=$(readlink -- "$dir/$name")
			case $real in
			/tmp/trstctl-svc.*) rm -rf -- "$real" ;;
			esac
		fi
		rm -rf -- "${dir:?}/$name"
	done
	rm -f -- "$dir/pg.port"
	return 0
}

svc_free_port()
{
	local port
	if [ -x /usr/bin/python3 ]; then
		# The kernel picks a port that is free now; callers race only with other binders.
		/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' && return 0
	fi
	for _ in $(seq 1 100); do
		port=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
			! ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	_svc_err "no free loopback port found"
}

# The pid of the nats-server started in DIR, or nothing.
_svc_nats_pid()
{
	local pid
	[ -r "$1/nats.pid" ] || return 1
	# nats-server writes its pid without a newline, so read reports EOF.
	read -r pid <"$1/nats.pid" || [ -n "$pid" ] || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = nats-server ] || return 1
	printf '%s\n' "$pid"
}

# Succeeds when 127.0.0.1:$1 greets with a NATS INFO line that says JetStream is on.
_svc_nats_ready()
{
	local line
	line=$(exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$1" && read -r -t 2 line <&3 &&
		printf '%s' "$line") || return 1
	[[ $line == INFO* && $line == *'"jetstream":true'* ]]
}

svc_nats_start()
{
	local dir port pid running
	[ $# -ge 2 ] || _svc_err "usage: svc_nats_start DIR PORT" || return
	dir=$(_svc_abspath "$1")
	port=$2
	[[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
		_svc_err "svc_nats_start: bad port '$port'" || return
	command -v nats-server >/dev/null || _svc_err "nats-server not found (apt-get install" \
		"nats-server)" || return
	mkdir -p -- "$dir/nats" || _svc_err "cannot create $dir/nats" || return

	if _svc_nats_pid "$dir" >/dev/null; then
		read -r running <"$dir/nats.port" 2>/dev/null || running=$port
		[ "$running" = "$port" ] ||
			echo "services: nats-server in $dir already runs on port $running" >&2
		export TRSTCTL_NATS_URL="nats://127.0.0.1:$running"
		return 0
	fi

	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		_svc_err "port 127.0.0.1:$port is already in use; nats-server not started"
		return
	fi

	rm -f -- "$dir/nats.pid"
	# setsid: its own session, so a Ctrl-C at the terminal reaches the caller (whose trap
	# stops this server in order) and not this server directly.
	setsid nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/nats" -P "$dir/nats.pid" \
		</dev/null >>"$dir/nats.log" 2>&1 &
	pid=$!
	echo "$port" >"$dir/nats.port"
	for _ in $(seq 1 100); do
		# Ready means greeting with JetStream on and having written its pid file.
		if _svc_nats_ready "$port" && _svc_nats_pid "$dir" >/dev/null; then
			export TRSTCTL_NATS_URL="nats://127.0.0.1:$port"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || _svc_nats_pid "$dir" >/dev/null || break
		sleep 0.1
	done
	kill -TERM "$(_svc_nats_pid "$dir" || echo "$pid")" 2>/dev/null
	tail -n 20 "$dir/nats.log" >&2 2>/dev/null
	_svc_err "nats-server did not start on 127.0.0.1:$port (log $dir/nats.log)"
}

svc_nats_stop()
{
	local dir pid
	[ $# -ge 1 ] || _svc_err "usage: svc_nats_stop DIR" || return
	dir=$(_svc_abspath "$1")
	pid=$(_svc_nats_pid "$dir") || { rm -f -- "$dir/nats.pid"; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f -- "$dir/nats.pid"
			return 0
		fi
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	sleep 0.2
	if kill -0 "$pid" 2>/dev/null; then
		_svc_err "nats-server (pid $pid) does not stop"
		return
	fi
	rm -f -- "$dir/nats.pid"
	echo "services: nats-server (pid $pid) needed SIGKILL" >&2
	return 0
}

svc_stop_all()
{
	local rc=0
	[ $# -ge 1 ] || _svc_err "usage: svc_stop_all DIR" || return
	svc_nats_stop "$1" || rc=1
	svc_pg_stop "$1" || rc=1
	return $rc
}
