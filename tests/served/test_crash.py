#!/usr/bin/python3
"""What a server owes its callers when something dies (issue 5).

  test_crash.py --case kill9|pg-down --trstctl PATH

kill9: PostgreSQL and `nats-server -js` (test_comp03.Services) outlive the server. Eight
  threads call Secrets.CreateSecret with distinct names and keep every call that returned
  OK; the server is killed with SIGKILL in the middle of the load and started again on
  the same database, KEK and NATS. Then every acknowledged secret reads back with its
  value, Audit.VerifyChain is ok, each has its secret.created audit record, and its event
  is on JetStream exactly once (and no event id is on the stream twice).
pg-down: with the server serving, its PostgreSQL is stopped. Reads and writes fail with
  UNAVAILABLE within their deadline (+1 s), the server stays up and /readyz says not
  ready; PostgreSQL is started again and the same calls succeed by themselves within a few
  seconds, /readyz ready again.
Exit 77 when grpcio, PostgreSQL or nats-server are missing.
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import expect
import spine
import test_comp03
import test_guard

THREADS = 8
LOAD_S = 2.0


def services(script, *args):
    r = subprocess.run(['bash', '-c', '. "$0"; ' + script, harness.SERVICES_SH] + list(args),
                       capture_output=True, text=True, timeout=120)
    expect(r.returncode == 0, '%s: %s' % (script, r.stderr.strip()[-300:]))


# -- kill -9 during a write load -------------------------------------------------------------

class Load:
    """threads callers of CreateSecret (api.create_secret(name, value, timeout=,
    request_id=)), each name once: acked holds (name, value) of every OK reply, failed
    {name: (value, request_id)} of the others (request_ids: 'tag-<thread>-<n>' when
    request_ids, else none), slowest the longest failed call. A failure pauses pause s."""

    def __init__(self, api, tag='crash', threads=THREADS, timeout=5, request_ids=False,
                 pause=0.0):
        self.api, self.tag, self.timeout = api, tag, timeout
        self.request_ids, self.pause = request_ids, pause
        self.acked = []
        self.failed = {}
        self.slowest = 0.0
        self.errors = collections.Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(threads)]

    def run(self, t):
        n = 0
        while not self.stop.is_set():
            n += 1
            name, value = '%s/t%d/%06d' % (self.tag, t, n), b'value-%d-%d' % (t, n)
            rid = '%s-%d-%d' % (self.tag, t, n) if self.request_ids else ''
            t0 = time.monotonic()
            try:
                self.api.create_secret(name, value, timeout=self.timeout, request_id=rid)
            except self.api.grpc.RpcError as e:
                with self.lock:
                    self.errors[e.code().name] += 1
                    self.failed[name] = (value, rid)
                    self.slowest = max(self.slowest, time.monotonic() - t0)
                time.sleep(self.pause)
                continue
            with self.lock:
                self.acked.append((name, value))

    def count(self):
        with self.lock:
            return len(self.acked)


def jetstream_created(js, after):
    """{secret name: number of secret.created events} and the list of event ids."""
    per_name, ids = collections.Counter(), []
    for m in js.messages(after):
        env = json.loads(m['raw'])
        ids.append(env['id'])
        expect(m['msg_id'] == env['id'], 'Nats-Msg-Id %r, event id %r' % (m['msg_id'],
                                                                         env['id']))
        if env['type'] == 'secret.created':
            per_name[env['data']['name']] += 1
    return per_name, ids


def case_kill9(exe, tmp, checks):
    svc = test_comp03.Services(tmp)
    srv = None
    try:
        svc.start()
        env = spine.server_env(tmp, svc.dsn, spine.make_kek(os.path.join(tmp, 'kek.bin')),
                               TRSTCTL_NATS_URL='nats://127.0.0.1:%d' % svc.nats_port)
        js = test_comp03.JetStream(svc.nats_port)
        seq0 = js.last_seq()
        srv = harness.Server(exe, env, start_timeout=60).start()
        checks.server = srv
        load = Load(spine.Api(srv, srv.bootstrap_token()))
        state = {}

        def kill_mid_load():
            for t in load.threads:
                t.start()
            deadline = time.monotonic() + LOAD_S
            while time.monotonic() < deadline or load.count() < 50:
                expect(time.monotonic() < deadline + 10, 'fewer than 50 writes in %.0f s'
                       % (LOAD_S + 10))
                time.sleep(0.05)
            before = load.count()
            srv.proc.kill()  # SIGKILL: no drain, no clean shutdown
            srv.proc.wait()
            time.sleep(0.3)  # calls in flight at the kill fail now
            load.stop.set()
            for t in load.threads:
                t.join(10)
            load.api.close()
            state['acked'] = list(load.acked)
            print('  %d writes acknowledged (%d when SIGKILL was sent), errors %s' % (
                len(load.acked), before, dict(load.errors)))
            expect(load.errors, 'no call failed: the kill did not land mid-load')

        if not checks.run('SIGKILL during %d threads of CreateSecret' % THREADS, kill_mid_load):
            return
        srv.stop()
        srv = harness.Server(exe, env, start_timeout=60).start()
        checks.server = srv
        api = spine.Api(srv, srv.bootstrap_token())
        acked = state['acked']

        def present():
            for name, value in acked:
                s = api.get_secret(name)
                expect(s.value == value, '%s reads back differently' % name)

        def audited():
            v = api.verify_chain()
            expect(v.ok, 'VerifyChain: first bad %d: %s' % (v.first_bad_sequence, v.detail))
            have = {e.resource for e in api.events('secret.created')}
            missing = [n for n, _ in acked if 'secrets/' + n not in have]
            expect(not missing, '%d acknowledged writes without an audit record, e.g. %s' % (
                len(missing), missing[:3]))
            print('  VerifyChain ok over %d records; %d secret.created records' % (
                v.checked, len(have)))

        def published():
            deadline = time.monotonic() + 20
            while True:
                per_name, ids = jetstream_created(js, seq0)
                missing = [n for n, _ in acked if per_name[n] == 0]
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            expect(not missing, '%d acknowledged writes have no event, e.g. %s' % (
                len(missing), missing[:3]))
            twice = [n for n, _ in acked if per_name[n] > 1]
            expect(not twice, 'events published more than once: %s' % twice[:3])
            dup = [i for i, c in collections.Counter(ids).items() if c > 1]
            expect(not dup, 'event ids on the stream twice: %s' % dup[:3])
            print('  JetStream: %d events, each acknowledged write exactly once' % len(ids))

        checks.run('every acknowledged write is present after the restart', present)
        checks.run('VerifyChain ok; every acknowledged write audited', audited)
        checks.run('every acknowledged write on JetStream exactly once', published)
        api.close()
        js.close()
    finally:
        checks.server = None
        if srv:
            srv.stop()
        svc.stop()


# -- PostgreSQL stopped while serving --------------------------------------------------------

def case_pg_down(exe, tmp, checks):
    srv = harness.Server(exe, spine.server_env(tmp, '', os.path.join(tmp, 'kek.bin'),
                                               TRSTCTL_KEK_GENERATE='true'), start_timeout=60)
    del srv.env['TRSTCTL_POSTGRES_DSN']  # the harness starts a PostgreSQL of its own
    try:
        srv.start()
        checks.server = srv
        api = spine.Api(srv, srv.bootstrap_token())
        api.create_secret('pgdown/before', b'v1')
        mport = test_guard.metrics_port(srv)
        calls = (('CreateSecret', lambda t: api.create_secret('pgdown/during', b'x', t)),
                 ('GetSecret', lambda t: api.get_secret('pgdown/before', timeout=t)),
                 ('VerifyChain', lambda t: api.verify_chain(t)))

        def ready_is(code):
            got, _ = test_guard.http_get(mport, '/readyz')
            expect(got == code, '/readyz answered %d, want %d' % (got, code))

        def down():
            ready_is(200)
            services('svc_pg_stop "$1"', srv.pg_dir)
            for deadline in (3.0, 1.0):
                for name, call in calls:
                    t0 = time.monotonic()
                    try:
                        call(deadline)
                    except api.grpc.RpcError as e:
                        took = time.monotonic() - t0
                        print('  %s (deadline %.0f s): %s after %.2f s: %s' % (
                            name, deadline, e.code().name, took, e.details()))
                        expect(e.code() == api.grpc.StatusCode.UNAVAILABLE,
                               '%s: %s, want UNAVAILABLE' % (name, e.code().name))
                        expect(took <= deadline + 1, '%s took %.2f s' % (name, took))
                    else:
                        raise AssertionError('%s succeeded with PostgreSQL down' % name)
            expect(srv.proc.poll() is None, 'the server exited')
            deadline = time.monotonic() + 5
            while True:
                got, _ = test_guard.http_get(mport, '/readyz')
                if got == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            expect(got == 503, '/readyz answered %d with PostgreSQL down, want 503' % got)

        def back():
            services('svc_pg_start "$1"', srv.pg_dir)
            t0 = time.monotonic()
            pending = dict(calls)
            while pending:
                for name, call in list(pending.items()):
                    try:
                        call(2.0)
                        del pending[name]
                    except api.grpc.RpcError as e:
                        expect(time.monotonic() - t0 < 10, '%s still fails after 10 s: %s' % (
                            name, e.code().name))
                time.sleep(0.2)
            print('  every call succeeds again %.1f s after PostgreSQL is back' % (
                time.monotonic() - t0))
            expect(api.get_secret('pgdown/during').value == b'x', 'pgdown/during')
            v = api.verify_chain()
            expect(v.ok, 'VerifyChain: %s' % v.detail)
            deadline = time.monotonic() + 5
            while True:
                got, _ = test_guard.http_get(mport, '/readyz')
                if got == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            expect(got == 200, '/readyz answered %d after PostgreSQL came back' % got)

        if checks.run('PostgreSQL stopped: UNAVAILABLE within the deadline, not ready', down):
            checks.run('PostgreSQL started: calls succeed by themselves, ready', back)
        api.close()
    finally:
        checks.server = None
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--case', choices=('kill9', 'pg-down'), required=True)
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    if not os.access(args.trstctl, os.X_OK):
        harness.skip('not built: %s' % args.trstctl)
    if args.case == 'kill9' and not shutil.which('nats-server'):
        harness.skip('nats-server not found (apt-get install nats-server)')
    tmp = tempfile.mkdtemp(prefix='trstctl-crash-')
    checks = harness.Checks('crash ' + args.case)
    started = time.monotonic()
    try:
        (case_kill9 if args.case == 'kill9' else case_pg_down)(args.trstctl, tmp, checks)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print('took %.1f s' % (time.monotonic() - started))
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
