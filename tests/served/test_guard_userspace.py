#!/usr/bin/python3
"""Served test of userspace egress enforcement: `trstctl serve` with
TRSTCTL_AIRGAP_ENFORCER=userspace, whose own clients check every connection.

  test_guard_userspace.py --trstctl PATH

Root only. The test re-runs itself inside new network and mount namespaces (`unshare -n
-m`): lo up, and an interface d0 holding 198.51.100.1/24 (a dummy device, or one end of
a veth pair whose other end answers nothing) whose packet counter shows that nothing was
even sent towards the public addresses used below (nothing beyond d0 exists in the
namespace, so a broken guard still sends nothing anywhere). A
private /etc/hosts is bind-mounted; it first maps pg.test and nats.test to 127.0.0.1,
where a PostgreSQL (TCP) and a `nats-server -js` of the test listen, and is rewritten in
place to make those names public later.

Checks: GetStatus, /readyz, /metrics and `trstctl guard status` say userspace and that
only the server's own clients are checked; the server reaches PostgreSQL and NATS by
name, pinned to the checked address; PostgreSQL's name turned public plus its backends
terminated: the reconnection is refused before any packet (d0 sent nothing), counted
under client="postgres" once per attempt, logged and listed once (rate limit); calls fail
with UNAVAILABLE; PostgreSQL's name back: calls work again and the refusal is in the audit
log (guard.denied, actor userspace) and in ListDenials; NATS's name turned public and
NATS restarted: the relay's reconnection is refused and counted under client="nats",
audited, and events flow again once the name is back. The guarded HTTP client's cases
are server/guard/test-gate.c (no OTLP exporter on this branch to point at a public
address). Exit 77 (with the reason) when it cannot run here.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import harness
from harness import expect
import spine
import test_guard

NS_MARK = 'TRSTCTL_GUARD_USERSPACE_IN_NS'
PG_PUBLIC = '198.51.100.7'
NATS_PUBLIC = '198.51.100.8'
NOTE = "guard: userspace enforcement: only this server's own clients are checked"


def reexec_in_namespaces():
    if os.geteuid() != 0:
        harness.skip('needs root (network and mount namespaces)')
    if not shutil.which('unshare') or not shutil.which('ip'):
        harness.skip('unshare or ip not found')
    env = dict(os.environ)
    env[NS_MARK] = '1'
    r = subprocess.run(['unshare', '-n', '-m', '--propagation', 'private',
                        sys.executable] + sys.argv, env=env)
    sys.exit(r.returncode)


def services(script, *args, timeout=120):
    r = subprocess.run(['bash', '-c', '. "$0"; ' + script, harness.SERVICES_SH] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


class World:
    """lo, d0, the private hosts file, PostgreSQL on TCP and nats-server -js."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='trstctl-userspace-test-')
        os.chmod(self.tmp, 0o755)
        self.hosts = os.path.join(self.tmp, 'hosts')
        self.svc = os.path.join(self.tmp, 'svc')
        self.mounted = False
        self.dummy = False
        self.pg = self.nats = False
        self.pg_port = self.nats_port = None
        self.sock = self.passfile = None

    def setup(self):
        if subprocess.run(['ip', 'link', 'set', 'lo', 'up']).returncode != 0:
            harness.skip('cannot bring lo up in the private network namespace')
        # A dummy device, else one end of a veth pair whose other end answers nothing:
        # either way a connect() towards 198.51.100.0/24 shows in d0's counter (an ARP
        # request at least) and reaches no one.
        ok = lambda cmds: all(subprocess.run(c, capture_output=True).returncode == 0
                              for c in cmds)
        # IPv6 is off on them: its own chatter (router solicitations) would show as sent.
        self.dummy = ok([['ip', 'link', 'add', 'd0', 'type', 'dummy']]) or ok([
            ['ip', 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'],
            ['sysctl', '-qw', 'net.ipv6.conf.d1.disable_ipv6=1'],
            ['ip', 'link', 'set', 'd1', 'up']])
        self.dummy = self.dummy and ok([['sysctl', '-qw', 'net.ipv6.conf.d0.disable_ipv6=1'],
                                        ['ip', 'addr', 'add', '198.51.100.1/24', 'dev', 'd0'],
                                        ['ip', 'link', 'set', 'd0', 'up']])
        if not self.dummy:
            print('note: no dummy or veth interface here; public addresses are unreachable '
                  'instead')
        self.map_names(pg='127.0.0.1', nats='127.0.0.1')
        if subprocess.run(['mount', '--bind', self.hosts, '/etc/hosts']).returncode != 0:
            harness.skip('cannot bind-mount a private /etc/hosts')
        self.mounted = True
        if not shutil.which('nats-server'):
            harness.skip('nats-server not found (apt-get install nats-server)')
        os.makedirs(self.svc)
        rc, out, err = services('p=$(svc_free_port) && svc_pg_start "$1" "$p" >&2 && '
                                'echo "$p" && readlink -f "$1/pgsock"', self.svc)
        if rc != 0 or not out:
            harness.skip('PostgreSQL cannot start here: %s' % err[-400:])
        self.pg = True
        self.pg_port, self.sock = out.splitlines()[-2:]
        self.passfile = os.path.join(self.svc, 'pgpass')  # the password (svc_pg_start)
        rc, out, err = services('p=$(svc_free_port) && svc_nats_start "$1" "$p" >&2 && '
                                'echo "$p"', self.svc)
        if rc != 0 or not out:
            harness.skip('nats-server -js cannot start here: %s' % err[-400:])
        self.nats = True
        self.nats_port = int(out.splitlines()[-1])

    def map_names(self, pg, nats):
        """Rewrites the hosts file in place (the bind mount keeps its inode)."""
        with open(self.hosts, 'w') as f:
            f.write('127.0.0.1 localhost\n::1 localhost\n%s pg.test\n%s nats.test\n'
                    % (pg, nats))

    def sent(self):
        """Packets d0 transmitted (towards 198.51.100.0/24); 0 without d0."""
        if not self.dummy:
            return 0
        with open('/proc/net/dev') as f:  # this network namespace's, unlike /sys
            for line in f:
                name, _, counters = line.partition(':')
                if name.strip() == 'd0':
                    return int(counters.split()[9])  # transmit packets
        raise AssertionError('d0 not in /proc/net/dev')

    def psql(self, sql):
        r = subprocess.run(['psql', '-h', self.sock, '-p', str(self.pg_port), '-U',
                            'postgres', '-d', 'postgres', '-wXAtq', '-c', sql],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PGPASSFILE=self.passfile))
        expect(r.returncode == 0, 'psql %r: %s' % (sql, r.stderr.strip()))
        return r.stdout.strip()

    def nats_restart(self):
        rc, _, err = services('svc_nats_stop "$1" && svc_nats_start "$1" "$2"', self.svc,
                              str(self.nats_port))
        expect(rc == 0, 'restarting nats-server: %s' % err[-300:])

    def cleanup(self):
        if self.nats:
            services('svc_nats_stop "$1"', self.svc)
        if self.pg:
            services('svc_pg_destroy "$1"', self.svc)
        if self.mounted:
            subprocess.run(['umount', '-l', '/etc/hosts'])
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    if os.environ.get(NS_MARK) != '1':
        reexec_in_namespaces()
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    world = World()
    try:
        world.setup()
        return run(args.trstctl, world)
    finally:
        world.cleanup()


def wait_for(what, fn, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        expect(time.monotonic() < deadline, 'timed out waiting for %s' % what)
        time.sleep(0.2)


def run(exe, world):
    import grpc
    import guard_pb2
    import guard_pb2_grpc

    checks = harness.Checks('guard-userspace')
    env = {
        'TRSTCTL_SERVER_TLS_MODE': 'disabled',
        'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true',
        'TRSTCTL_AIRGAP_ENABLED': 'true',
        'TRSTCTL_AIRGAP_ENFORCER': 'userspace',
        'TRSTCTL_POSTGRES_DSN': 'host=pg.test port=%s dbname=trstctl user=postgres '
                                'passfile=%s' % (world.pg_port, world.passfile),
        'TRSTCTL_NATS_URL': 'nats://nats.test:%d' % world.nats_port,
    }
    srv = harness.Server(exe, env=env, start_timeout=60)
    try:
        srv.start()
    except harness.ServerError as e:
        print(srv.log_tail(40))
        print('FAIL start: %s' % e)
        srv.stop()
        return 1
    checks.server = srv
    token = srv.bootstrap_token()
    stub = guard_pb2_grpc.GuardStub(harness.with_token(grpc.insecure_channel(srv.addr), token))
    api = spine.Api(srv, token)
    mport = test_guard.metrics_port(srv)
    sent0 = world.sent()

    def status():
        return stub.GetStatus(guard_pb2.GetStatusRequest(), timeout=10)

    def metrics():
        code, text = test_guard.http_get(mport, '/metrics')
        expect(code == 200, '/metrics %d' % code)
        return test_guard.parse_metrics(text), text

    def trips(client):
        return metrics()[0]['trstctl_egress_guard_userspace_trips_total{client="%s"}' % client]

    def refusals(client):
        """The "egress refused" log lines of client, parsed."""
        return [json.loads(l) for l in srv.log().splitlines()
                if '"egress refused"' in l and '"client":"%s"' % client in l]

    def says_userspace():
        s = status()
        expect(s.enabled and s.enforcer == 'userspace' and not s.armed, 'status %s' % s)
        expect(s.coverage == 'own_clients' and "own clients" in s.coverage_detail and
               'kernel does not enforce' in s.coverage_detail, 'coverage %r %r'
               % (s.coverage, s.coverage_detail))
        expect(dict(s.userspace_trips_by_client) == {'postgres': 0, 'nats': 0, 'http': 0},
               'by client %s' % dict(s.userspace_trips_by_client))
        code, body = test_guard.http_get(mport, '/readyz')
        expect(code == 200 and body.startswith('ready\n') and NOTE in body,
               '/readyz %d %r' % (code, body))
        m, text = metrics()
        for c in ('postgres', 'nats', 'http'):
            key = 'trstctl_egress_guard_userspace_trips_total{client="%s"}' % c
            expect(m.get(key) == 0, '%s = %s' % (key, m.get(key)))
        expect(m['trstctl_egress_guard_enforcer{enforcer="userspace"}'] == 1, 'enforcer gauge')
        if shutil.which('promtool'):
            r = subprocess.run(['promtool', 'check', 'metrics'], input=text,
                               capture_output=True, text=True)
            expect(r.returncode == 0, 'promtool: %s' % (r.stdout + r.stderr).strip())
        cenv = dict(srv.env)
        cenv['TRSTCTL_SERVER_ADDR'] = srv.addr
        code, out = harness.run_cmd([exe, 'guard', 'status'], env=cenv)
        expect(code == 0 and 'coverage:' in out and 'own_clients' in out, 'human: %s' % out)
        expect(re.search(r'^coverage:\s+own_clients$', out, re.M) and
               re.search(r'^coverage_detail:\s+.*kernel does not enforce', out, re.M) and
               re.search(r'^userspace_trips_by_client:$', out, re.M) and
               re.search(r'^  postgres\s+0$', out, re.M), 'human: %s' % out)
        code, out = harness.run_cmd([exe, 'guard', 'status', '-o', 'json'], env=cenv)
        j = json.loads(out) if code == 0 else {}
        # proto3 JSON: lowerCamelCase names, 64-bit counters as strings
        expect(j.get('coverage') == 'own_clients' and
               'kernel does not enforce' in j.get('coverageDetail', '') and
               j.get('userspaceTripsByClient') == {'postgres': '0', 'nats': '0', 'http': '0'},
               'json: %s' % out)

    def pinned_by_name():
        api.create_secret('userspace/one', b'v1')
        rows = world.psql("SELECT DISTINCT host(client_addr) FROM pg_stat_activity "
                          "WHERE application_name LIKE 'trstctl%'")
        expect(rows.split() == ['127.0.0.1'], 'the server connected from %r' % rows)
        wait_for('the event on JetStream',
                 lambda: metrics()[0].get('trstctl_outbox_published_total', 0) >= 1)

    def pg_refused():
        world.map_names(pg=PG_PUBLIC, nats='127.0.0.1')
        n = world.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE application_name LIKE 'trstctl%'")
        expect(int(n) >= 1, 'no backend of the server to terminate')
        failed = []
        for i in range(5):
            try:
                api.create_secret('userspace/refused-%d' % i, b'x', timeout=15)
            except grpc.RpcError as e:
                failed.append(e.code())
        expect(world.sent() == sent0, 'd0 sent %d packets towards %s'
               % (world.sent() - sent0, PG_PUBLIC))
        expect(failed and all(c == grpc.StatusCode.UNAVAILABLE for c in failed),
               'calls with PostgreSQL refused: %s, want UNAVAILABLE' % failed)
        wait_for('refusals counted', lambda: trips('postgres') >= 3)
        lines = refusals('postgres')
        expect(len(lines) == 1, '%d "egress refused" lines for postgres, want 1 (rate limit)'
               % len(lines))
        ln = lines[0]
        expect(ln['level'] == 'warn' and ln['host'] == 'pg.test' and
               ln['address'] == PG_PUBLIC and ln['port'] == int(world.pg_port) and
               'resolves to %s, a public address' % PG_PUBLIC in ln['reason'],
               'log line %s' % ln)
        expect(world.sent() == sent0, 'd0 sent %d packets towards %s'
               % (world.sent() - sent0, PG_PUBLIC))
        print('  %d refusals counted, 1 logged; d0 sent nothing' % trips('postgres'))

    def pg_back_audited():
        world.map_names(pg='127.0.0.1', nats='127.0.0.1')

        def works():
            try:
                api.create_secret('userspace/back-%f' % time.monotonic(), b'x', timeout=15)
                return True
            except grpc.RpcError:
                return False
        wait_for('calls to work again', works, timeout=30)

        def record():
            ev = [e for e in api.events('guard.denied') if e.actor == 'userspace' and
                  json.loads(e.data_json).get('client') == 'postgres']
            return ev
        ev = wait_for('the guard.denied record (actor userspace)', record, timeout=60)
        expect(len(ev) == 1, '%d records, want 1 (rate limit)' % len(ev))
        d = json.loads(ev[0].data_json)
        expect(d['host'] == 'pg.test' and d['address'] == PG_PUBLIC and
               d['hook'] == 'userspace' and d['protocol'] == 'tcp' and
               ev[0].outcome == 'denied' and
               ev[0].resource == '%s:%s' % (PG_PUBLIC, world.pg_port), 'record %s' % ev[0])
        listed = stub.ListDenials(guard_pb2.ListDenialsRequest(), timeout=10).denials
        expect(any(x.hook == 'userspace' and x.client == 'postgres' and x.host == 'pg.test'
                   and x.address == PG_PUBLIC and 'public address' in x.reason
                   for x in listed), 'ListDenials %s' % listed)

    def nats_refused_then_back():
        published = metrics()[0].get('trstctl_outbox_published_total', 0)
        world.map_names(pg='127.0.0.1', nats=NATS_PUBLIC)
        world.nats_restart()
        wait_for('the relay refused', lambda: trips('nats') >= 1, timeout=30)
        lines = refusals('nats')
        expect(len(lines) == 1 and lines[0]['host'] == 'nats.test' and
               lines[0]['address'] == NATS_PUBLIC, 'log lines %s' % lines)
        api.create_secret('userspace/during-nats', b'x')
        time.sleep(1)
        expect(metrics()[0].get('trstctl_outbox_published_total', 0) == published,
               'an event was published while NATS was refused')
        world.map_names(pg='127.0.0.1', nats='127.0.0.1')
        wait_for('events published again',
                 lambda: metrics()[0].get('trstctl_outbox_published_total', 0) > published,
                 timeout=30)

        def record():
            return [e for e in api.events('guard.denied') if e.actor == 'userspace' and
                    json.loads(e.data_json).get('client') == 'nats']
        ev = wait_for('the nats guard.denied record', record)
        d = json.loads(ev[0].data_json)
        expect(d['host'] == 'nats.test' and d['address'] == NATS_PUBLIC, 'record %s' % d)
        expect(world.sent() == sent0, 'd0 sent %d packets' % (world.sent() - sent0))

    def totals_agree():
        s = status()
        m = metrics()[0]
        by = dict(s.userspace_trips_by_client)
        for c, n in by.items():
            key = 'trstctl_egress_guard_userspace_trips_total{client="%s"}' % c
            expect(m[key] >= n, '%s = %d, status said %d' % (key, m[key], n))
        expect(s.userspace_trips == sum(by.values()) and by['postgres'] >= 3 and
               by['nats'] >= 1 and by['http'] == 0, 'status %s' % s)
        expect(s.trips == 0, 'kernel trips %d without a kernel guard' % s.trips)
        v = api.verify_chain()
        expect(v.ok, 'VerifyChain: %s' % v)

    try:
        checks.run('GetStatus, /readyz, /metrics, guard status: userspace, own clients only',
                   says_userspace)
        checks.run('PostgreSQL and NATS reached by name, pinned to the checked address',
                   pinned_by_name)
        checks.run('PostgreSQL name turned public: refused before connecting, counted, '
                   'logged once, nothing sent', pg_refused)
        checks.run('PostgreSQL back: the refusal is audited (actor userspace) and listed',
                   pg_back_audited)
        checks.run('NATS name turned public: the relay refused, audited; back: events flow',
                   nats_refused_then_back)
        checks.run('GetStatus and /metrics agree; the audit chain verifies', totals_agree)
    finally:
        api.close()
        srv.stop()
        shutil.rmtree(srv.state_dir, ignore_errors=True)
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
