#!/usr/bin/python3
"""A hung PostgreSQL: the cluster stopped with SIGSTOP, not killed (abuse hardening).

  test_pg_hang.py --trstctl PATH

The server serves on a PostgreSQL of its own (harness), statement timeout at its default
(5 s). While writers call CreateSecret with request_ids, every process of that cluster is
stopped with SIGSTOP (the postmaster first, so that no new backend appears, then its
children). Then, with a client deadline of 30 s:
  - CreateSecret and IssueCertificate answer UNAVAILABLE "the database did not answer in
    time" within BOUND_S, and so does every write of the load;
  - Guard.GetStatus and Health.Check answer within a second (they need no database);
  - /readyz answers 503 naming postgres with a reason within BOUND_S; /healthz stays 200.
SIGCONT (always: finally). Then, with nothing restarted:
  - the same calls succeed again by themselves within RECOVER_S, /readyz answers 200, and
    the log said when PostgreSQL stopped answering and when it answered again;
  - every write that failed is retried with its request_id and succeeds; a second retry
    gets the same reply (IssueCertificate: the same certificate);
  - nothing is lost or written twice: every acknowledged secret reads back with its value,
    each secret and each issuance has exactly one audit record, each identity exactly one
    certificate, and VerifyChain is ok.
Exit 77 without grpcio or PostgreSQL.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import harness
from harness import expect
import spine
import test_crash
import test_guard

BOUND_S = 6.5     # the statement timeout (5 s) and a margin; far below the deadline
DEADLINE_S = 30   # the clients' deadline
RECOVER_S = 15
WRITERS = 4
GONE = 'did not answer in time'


# -- the PostgreSQL cluster's processes -----------------------------------------------------

def postmaster_pid(pg_dir):
    """The pid in the cluster's postmaster.pid (svc_pg_start keeps its data in DIR/pg)."""
    with open(os.path.join(os.path.realpath(os.path.join(pg_dir, 'pg')), 'postmaster.pid')) as f:
        return int(f.readline())


def children(pid):
    """Pids whose parent is pid (the postmaster's backends and auxiliary processes)."""
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'
        if int(stat[stat.rindex(')') + 2:].split()[1]) == pid:
            out.append(int(d))
    return out


def state_of(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
        return stat[stat.rindex(')') + 2]
    except OSError:
        return None


class Cluster:
    """SIGSTOP / SIGCONT of every process of one PostgreSQL cluster."""

    def __init__(self, pg_dir):
        self.master = postmaster_pid(pg_dir)
        self.stopped = []

    def stop(self):
        os.kill(self.master, signal.SIGSTOP)  # first: it forks no backend while stopped
        self.stopped.append(self.master)
        for _ in range(20):  # until no child is left running
            left = [p for p in children(self.master) if p not in self.stopped]
            if not left:
                break
            for p in left:
                try:
                    os.kill(p, signal.SIGSTOP)
                    self.stopped.append(p)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        while any(state_of(p) not in ('T', None) for p in self.stopped):
            expect(time.monotonic() < deadline, 'PostgreSQL processes did not stop')
            time.sleep(0.02)
        return len(self.stopped)

    def cont(self):
        for p in reversed(self.stopped):
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped = []


# -- the calls --------------------------------------------------------------------------------

class Calls:
    def __init__(self, srv, token):
        import grpc
        import ca_pb2
        import ca_pb2_grpc
        import guard_pb2
        import guard_pb2_grpc
        import health_pb2
        import health_pb2_grpc
        import secrets_pb2
        import secrets_pb2_grpc
        self.grpc, self.ca_pb2, self.secrets_pb2 = grpc, ca_pb2, secrets_pb2
        self.guard_pb2, self.health_pb2 = guard_pb2, health_pb2
        self.raw = grpc.insecure_channel(srv.addr)
        ch = harness.with_token(self.raw, token)
        self.ca = ca_pb2_grpc.CAStub(ch)
        self.secrets = secrets_pb2_grpc.SecretsStub(ch)
        self.guard = guard_pb2_grpc.GuardStub(ch)
        self.health = health_pb2_grpc.HealthStub(self.raw)

    def close(self):
        self.raw.close()

    def create_secret(self, name, value, timeout=DEADLINE_S, request_id=''):
        return self.secrets.CreateSecret(self.secrets_pb2.CreateSecretRequest(
            name=name, value=value, request_id=request_id), timeout=timeout)

    def get_secret(self, name, timeout=10):
        return self.secrets.GetSecret(self.secrets_pb2.GetSecretRequest(name=name),
                                      timeout=timeout)

    def identity(self, tag):
        """A requested identity (IssueCertificate moves it to issued)."""
        o = self.ca.CreateOwner(self.ca_pb2.CreateOwnerRequest(
            kind='workload', name='hang-owner-' + tag), timeout=10)
        name = '%s.hang.test' % tag
        return self.ca.CreateIdentity(self.ca_pb2.CreateIdentityRequest(
            kind='x509_certificate', name=name, owner_id=o.id, dns_names=[name]),
            timeout=10).id

    def issue(self, identity_id, rid, timeout=DEADLINE_S):
        return self.ca.IssueCertificate(self.ca_pb2.IssueCertificateRequest(
            identity_id=identity_id, request_id=rid), timeout=timeout)

    def status(self, timeout=2):
        return self.guard.GetStatus(self.guard_pb2.GetStatusRequest(), timeout=timeout)

    def check(self, timeout=2):
        return self.health.Check(self.health_pb2.HealthCheckRequest(), timeout=timeout)


def timed(fn):
    """(status code, details or reply, seconds) of one call."""
    import grpc
    t0 = time.monotonic()
    try:
        r = fn()
        return grpc.StatusCode.OK, r, time.monotonic() - t0
    except grpc.RpcError as e:
        return e.code(), e.details(), time.monotonic() - t0


def expect_unavailable(name, result):
    import grpc
    code, details, took = result
    print('  %s: %s after %.2f s: %s' % (name, code.name, took, details))
    expect(code == grpc.StatusCode.UNAVAILABLE, '%s: %s, want UNAVAILABLE' % (name, code.name))
    expect(GONE in details, '%s: the message does not say why: %r' % (name, details))
    expect(took <= BOUND_S, '%s took %.2f s (bound %.1f s)' % (name, took, BOUND_S))


def load_start(calls):
    """WRITERS threads of CreateSecret with request_ids (test_crash.Load)."""
    load = test_crash.Load(calls, tag='hang', threads=WRITERS, timeout=DEADLINE_S,
                           request_ids=True, pause=0.2)
    for t in load.threads:
        t.start()
    return load


def load_finish(load):
    load.stop.set()
    for t in load.threads:
        t.join(DEADLINE_S + 5)


def psql_count(dsn, sql):
    return int(spine.psql(dsn, sql)[0][0])


def run(exe, tmp, checks):
    srv = harness.Server(exe, spine.server_env(tmp, '', os.path.join(tmp, 'kek.bin'),
                                               TRSTCTL_KEK_GENERATE='true'), start_timeout=60)
    del srv.env['TRSTCTL_POSTGRES_DSN']  # the harness starts a PostgreSQL of its own
    cluster = None
    try:
        srv.start()
        checks.server = srv
        dsn = srv.env['TRSTCTL_POSTGRES_DSN']
        calls = Calls(srv, srv.bootstrap_token())
        mport = test_guard.metrics_port(srv)
        calls.create_secret('hang/before', b'v0', request_id='hang-before')
        idents = {tag: calls.identity(tag) for tag in ('during', 'after')}
        calls.status()  # the token is cached now: authentication needs no database
        expect(test_guard.http_get(mport, '/readyz')[0] == 200, 'not ready before the test')
        cluster = Cluster(srv.pg_dir)
        load = None
        state = {}

        def hung():
            nonlocal load
            load = load_start(calls)
            time.sleep(0.5)
            n = cluster.stop()
            t0 = time.monotonic()
            print('  SIGSTOP: %d processes of the cluster (postmaster %d)' % (
                n, cluster.master))
            # readiness first: it must see the silence on its own
            while True:
                code, body = test_guard.http_get(mport, '/readyz')
                if code == 503 or time.monotonic() - t0 > BOUND_S:
                    break
                time.sleep(0.2)
            print('  /readyz %d after %.2f s: %s' % (code, time.monotonic() - t0,
                                                    body.strip()))
            expect(code == 503 and 'postgres' in body and '(' in body,
                   '/readyz %d %r, want 503 naming postgres and why' % (code, body))
            expect(test_guard.http_get(mport, '/healthz')[0] == 200, '/healthz not 200')
            results = {}

            def one(key, fn):
                results[key] = timed(fn)

            writes = [threading.Thread(target=one, args=a) for a in (
                ('create', lambda: calls.create_secret('hang/during', b'x1',
                                                       request_id='hang-create')),
                ('issue', lambda: calls.issue(idents['during'], 'hang-issue')))]
            for w in writes:
                w.start()
            for name, fn in (('Guard.GetStatus', calls.status), ('Health.Check', calls.check)):
                code, r, took = timed(fn)
                print('  %s: %s after %.3f s' % (name, code.name, took))
                expect(code.name == 'OK' and took < 1.0,
                       '%s: %s after %.2f s while PostgreSQL is stopped' % (
                           name, code.name, took))
            for w in writes:
                w.join(DEADLINE_S + 5)
            expect_unavailable('CreateSecret', results['create'])
            expect_unavailable('IssueCertificate', results['issue'])
            # a second round once the silence is known: the same answer, and no slower
            expect_unavailable('CreateSecret again', timed(
                lambda: calls.create_secret('hang/during', b'x1', request_id='hang-create')))
            expect_unavailable('IssueCertificate again', timed(
                lambda: calls.issue(idents['during'], 'hang-issue')))
            expect(srv.proc.poll() is None, 'the server exited')
            state['stopped_at'] = t0

        def resumed():
            cluster.cont()
            t0 = time.monotonic()
            pending = {
                'CreateSecret': lambda: calls.create_secret('hang/during', b'x1', timeout=5,
                                                            request_id='hang-create'),
                'IssueCertificate': lambda: calls.issue(idents['during'], 'hang-issue',
                                                        timeout=5),
                'GetSecret': lambda: calls.get_secret('hang/before', timeout=5),
            }
            first = {}
            while pending:
                for name, fn in list(pending.items()):
                    code, r, _ = timed(fn)
                    if code.name == 'OK':
                        first[name] = r
                        del pending[name]
                    else:
                        expect(time.monotonic() - t0 < RECOVER_S, '%s still %s %.0f s after '
                               'SIGCONT: %s' % (name, code.name, RECOVER_S, r))
                time.sleep(0.2)
            print('  every call succeeds again %.1f s after SIGCONT' % (time.monotonic() - t0))
            while True:
                code, body = test_guard.http_get(mport, '/readyz')
                if code == 200 or time.monotonic() - t0 > RECOVER_S:
                    break
                time.sleep(0.2)
            expect(code == 200, '/readyz %d %r after SIGCONT' % (code, body))
            log = srv.log()
            expect('PostgreSQL does not answer' in log and 'PostgreSQL answers again' in log,
                   'the log does not say when PostgreSQL stopped and started answering')
            load_finish(load)
            print('  load: %d OK, failed %s; slowest failure %.2f s' % (
                len(load.acked), dict(load.errors), load.slowest))
            expect(load.failed, 'no write of the load failed: the stop did not land')
            expect(load.slowest <= BOUND_S, 'a write of the load failed only after %.2f s'
                   % load.slowest)
            # the same request_id again: the same reply, nothing runs twice
            again = calls.create_secret('hang/during', b'x1', request_id='hang-create')
            expect(again.SerializeToString() == first['CreateSecret'].SerializeToString(),
                   'CreateSecret retried: another reply')
            cert = calls.issue(idents['during'], 'hang-issue')
            expect(cert.serial == first['IssueCertificate'].serial,
                   'IssueCertificate retried: serial %s, first %s' % (
                       cert.serial, first['IssueCertificate'].serial))
            issued = calls.issue(idents['after'], 'hang-after')
            expect(issued.serial, 'a new issuance after SIGCONT')
            for name, (value, rid) in sorted(load.failed.items()):
                r1 = calls.create_secret(name, value, request_id=rid)
                r2 = calls.create_secret(name, value, request_id=rid)
                expect(r1.SerializeToString() == r2.SerializeToString(),
                       '%s: two retries, two replies' % name)
                load.acked.append((name, value))
            state['acked'] = dict(load.acked)

        def intact():
            acked = state['acked']
            for name, value in acked.items():
                expect(calls.get_secret(name).value == value, '%s reads back differently'
                       % name)
            names = list(acked) + ['hang/during', 'hang/before']
            twice = spine.psql(
                dsn, "SELECT resource, count(*) FROM audit_events WHERE type = "
                "'secret.created' GROUP BY resource HAVING count(*) <> 1")
            expect(not twice, 'secrets audited other than once: %s' % twice[:3])
            have = psql_count(dsn, "SELECT count(*) FROM audit_events WHERE type = "
                              "'secret.created'")
            expect(have == len(names), '%d secret.created records for %d secrets' % (
                have, len(names)))
            expect(psql_count(dsn, "SELECT count(*) FROM secret_versions") == len(names),
                   'secret versions other than one per secret')
            for tag, ident in idents.items():
                n = psql_count(dsn, "SELECT count(*) FROM certificates WHERE identity_id = "
                               "'%s'" % ident)
                expect(n == 1, 'identity %s has %d certificates' % (tag, n))
            v = spine.Api(srv, srv.bootstrap_token())
            try:
                chain = v.verify_chain()
                expect(chain.ok, 'VerifyChain: first bad %d' % chain.first_bad_sequence)
            finally:
                v.close()
            print('  %d secrets, each once; 2 certificates, each once; VerifyChain ok over '
                  '%d records' % (len(names), chain.checked))

        try:
            ok = checks.run('PostgreSQL stopped: UNAVAILABLE within %.1f s, GetStatus '
                            'answers, not ready' % BOUND_S, hung)
        finally:
            cluster.cont()  # whatever happened: never leave the cluster stopped
        if ok and checks.run('SIGCONT: calls succeed by themselves, ready, retries replay',
                             resumed):
            checks.run('nothing lost, nothing written twice', intact)
        if load:
            load_finish(load)
        calls.close()
    finally:
        if cluster:
            cluster.cont()
        checks.server = None
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    if not os.access(args.trstctl, os.X_OK):
        harness.skip('not built: %s' % args.trstctl)
    if not shutil.which('psql'):
        harness.skip('psql not found (it counts rows)')
    tmp = tempfile.mkdtemp(prefix='trstctl-pghang-')
    checks = harness.Checks('pg-hang')
    started = time.monotonic()
    try:
        run(args.trstctl, tmp, checks)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print('took %.1f s' % (time.monotonic() - started))
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
