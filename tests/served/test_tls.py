#!/usr/bin/python3
"""The internal TLS mode, verified by its clients: a certificate from the built-in CA.

  run-with-pg.sh test_tls.py --trstctl PATH

run-with-pg.sh provides a PostgreSQL (TRSTCTL_POSTGRES_DSN) that outlives the servers, so
that restarts and replicas meet the same database and KEK. Servers run with
TRSTCTL_SERVER_TLS_MODE=internal and TRSTCTL_SERVER_TLS_SANS naming, besides the loopback
names, the Service names a pod would be called by (trstctl.tls-test.svc, ...).

  - `trstctl ca bundle` (which verifies the server with the bundle the server wrote to its
    state folder) prints the CA bundle; grpcio with root_certificates=bundle and verification
    on calls GetCABundle and gets the same bundle. The target is 127.0.0.1 or localhost
    (names in the certificate: no override), or, with grpc.ssl_target_name_override, the
    Service name the test chose: it is in the certificate, but nothing here resolves it,
    so the test dials loopback and checks that name.
  - the served certificate carries exactly the configured names and chains to the bundle;
    a name it does not carry, or roots that are not the bundle, fail the handshake
    (UNAVAILABLE in grpcio, SSLCertVerificationError in Python's ssl). With the Service
    names only (as the Helm chart sets them) dialling 127.0.0.1 fails, and the CLI, which
    dials 127.0.0.1 in the pod, checks the first Service name and succeeds.
  - a restart serves the same certificate (same serial), and so does a second replica
    started beside it; other names get a certificate of their own, one for two servers
    that start with them at the same moment.
  - with a short lifetime (server.tls.validity 20s, renew_before 14s, values for this test)
    the server renews while it runs: a new connection gets a new serial, verified with the
    same bundle, while a connection made before keeps working (a WatchEvents stream opened
    on it still delivers the audit record of a write made afterwards).
  - every issuance left an audit record server_certificate.issued with its reason.
Exit 77 when PostgreSQL, grpcio or the binary are missing.
"""

import argparse
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time

import harness
from harness import expect
import spine

NAMES = ['localhost', '127.0.0.1', '::1', 'trstctl.tls-test.svc',
         'trstctl.tls-test.svc.cluster.local']
SVC = 'trstctl.tls-test.svc'


def serial_of(pem):
    """The serial of a PEM certificate as the server logs it: 32 lowercase hex digits (a
    leading 0 digit kept; openssl prints the serial's bytes, the server its 16 bytes)."""
    r = subprocess.run(['openssl', 'x509', '-noout', '-serial'], input=pem,
                       capture_output=True, check=True)
    return '%032x' % int(r.stdout.decode().strip().split('=', 1)[1], 16)


def sans_of(pem):
    r = subprocess.run(['openssl', 'x509', '-noout', '-ext', 'subjectAltName'], input=pem,
                       capture_output=True, check=True)
    line = r.stdout.decode().strip().splitlines()[-1]
    return sorted(n.strip() for n in line.split(','))


def want_sans(names):
    out = []
    for n in names:
        if n == '::1':
            out.append('IP Address:0:0:0:0:0:0:0:1')
        elif n[0].isdigit():
            out.append('IP Address:' + n)
        else:
            out.append('DNS:' + n)
    return sorted(out)


class Test:
    def __init__(self, exe, dsn, tmp):
        import grpc
        import audit_pb2
        import audit_pb2_grpc
        import ca_pb2
        import ca_pb2_grpc
        import health_pb2
        import health_pb2_grpc
        import secrets_pb2
        import secrets_pb2_grpc
        self.grpc = grpc
        self.pb = {'audit': audit_pb2, 'ca': ca_pb2, 'health': health_pb2,
                   'secrets': secrets_pb2}
        self.stubs = {'audit': audit_pb2_grpc.AuditStub, 'ca': ca_pb2_grpc.CAStub,
                      'health': health_pb2_grpc.HealthStub,
                      'secrets': secrets_pb2_grpc.SecretsStub}
        self.exe, self.dsn, self.tmp = exe, dsn, tmp
        self.kek = spine.make_kek(os.path.join(tmp, 'kek.bin'))
        self.servers = []
        self.srv = None
        self.bundle = None
        self.token = None
        self.serial = None

    def env(self, folder='a', names=NAMES, **extra):
        os.makedirs(os.path.join(self.tmp, folder), exist_ok=True)
        env = spine.server_env(os.path.join(self.tmp, folder), self.dsn, self.kek,
                               TRSTCTL_SERVER_TLS_MODE='internal',
                               TRSTCTL_SERVER_TLS_SANS=','.join(names))
        del env['TRSTCTL_DEV_ALLOW_PLAINTEXT']
        env.update(extra)
        return env

    def start(self, env):
        s = harness.Server(self.exe, env, start_timeout=60)
        self.servers.append(s)
        try:
            return s.start()
        except harness.ServerError as e:
            raise AssertionError('%s:\n%s' % (e, s.log_tail()))

    def stop(self, s):
        s.stop()
        shutil.rmtree(s.state_dir, ignore_errors=True)  # the harness's own temp folder
        self.servers.remove(s)

    def channel(self, s, target=None, name=None, roots=None):
        """A verifying grpcio channel to s; name: the name checked instead of target's."""
        creds = self.grpc.ssl_channel_credentials(
            root_certificates=self.bundle if roots is None else roots)
        opts = [('grpc.ssl_target_name_override', name)] if name else []
        opts.append(('grpc.use_local_subchannel_pool', 1))  # a connection of its own
        return self.grpc.secure_channel(target or s.addr, creds, options=opts)

    def authed(self, ch):
        return harness.with_token(ch, self.token)

    def healthy(self, ch):
        r = self.stubs['health'](ch).Check(self.pb['health'].HealthCheckRequest(), timeout=10)
        return r.status == self.pb['health'].HealthCheckResponse.SERVING

    def served(self, s, name='localhost'):
        return harness.served_cert('127.0.0.1', s.port, self.bundle, name)

    def cli(self, s, *args):
        env = dict(os.environ)
        env = {k: v for k, v in env.items() if not k.startswith('TRSTCTL_')}
        env.update(s.env)
        return harness.run_cmd([self.exe] + list(args) + ['--addr', s.addr], env=env)

    # -- checks ---------------------------------------------------------------------------

    def bundle_from_cli(self):
        self.srv = self.start(self.env())
        self.token = self.srv.bootstrap_token()
        rc, out = self.cli(self.srv, 'ca', 'bundle')
        expect(rc == 0 and '-----BEGIN CERTIFICATE-----' in out,
               'trstctl ca bundle: exit %d: %s' % (rc, out[-400:]))
        self.bundle = out.encode()
        expect(self.bundle == self.srv.internal_ca_pem(),
               'the CLI printed another bundle than the state folder holds')

    def verified_calls(self):
        # the names the certificate carries, as the target: nothing to override
        for target in (self.srv.addr, 'localhost:%d' % self.srv.port):
            expect(self.healthy(self.channel(self.srv, target=target)),
                   'Health over a verified channel to %s' % target)
        # the Service name a pod would dial: in the certificate, but not resolvable here,
        # so the test dials loopback and has grpc check that name
        ch = self.authed(self.channel(self.srv, name=SVC))
        got = self.stubs['ca'](ch).GetCABundle(self.pb['ca'].GetCABundleRequest(), timeout=10)
        expect(got.pem.encode() == self.bundle,
               'GetCABundle over the verified channel differs from `trstctl ca bundle`')

    def served_names(self):
        pem = self.served(self.srv, SVC)
        expect(sans_of(pem) == want_sans(NAMES),
               'served SANs %s, want %s' % (sans_of(pem), want_sans(NAMES)))
        self.serial = serial_of(pem)
        expect('"serial":"%s"' % self.serial in self.srv.log(),
               'the log does not name serial %s' % self.serial)

    def wrong_names_refused(self):
        grpc = self.grpc
        for what, ch in (
                ('a name the certificate does not carry',
                 self.channel(self.srv, name='other.tls-test.svc')),
                ('the server name only half right', self.channel(self.srv, name='tls-test.svc')),
                ('the system roots instead of the bundle',
                 grpc.secure_channel(self.srv.addr, grpc.ssl_channel_credentials(),
                                     options=[('grpc.use_local_subchannel_pool', 1)]))):
            try:
                self.healthy(ch)
                raise AssertionError('%s: the handshake verified' % what)
            except grpc.RpcError as e:
                expect(e.code() == grpc.StatusCode.UNAVAILABLE,
                       '%s: want UNAVAILABLE, got %s' % (what, e.code()))
        try:
            self.served(self.srv, 'other.tls-test.svc')
            raise AssertionError('ssl verified a name the certificate does not carry')
        except ssl.SSLCertVerificationError as e:
            expect("Hostname mismatch" in str(e) or 'match' in str(e), 'ssl said %s' % e)

    def restart_reuses(self):
        self.stop(self.srv)
        self.srv = self.start(self.env())
        expect(serial_of(self.served(self.srv)) == self.serial,
               'after a restart the server serves another certificate')
        expect('using the stored server certificate' in self.srv.log(),
               'the restarted server does not say it reused the stored certificate')
        replica = self.start(self.env(folder='b'))
        expect(serial_of(self.served(replica)) == self.serial,
               'a second replica with the same names serves another certificate')
        self.stop(replica)

    def other_names_other_cert(self):
        names = NAMES + ['extra.tls-test.svc']
        # two servers with the new names start at once: one stores, both serve it
        started = []
        threads = [threading.Thread(target=lambda f: started.append(
            self.start(self.env(folder=f, names=names))), args=(f,)) for f in ('c', 'e')]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expect(len(started) == 2, 'both servers with the new names start')
        pems = [self.served(s, 'extra.tls-test.svc') for s in started]
        expect(serial_of(pems[0]) == serial_of(pems[1]),
               'two servers started at once with the same names serve different certificates')
        expect(serial_of(pems[0]) != self.serial, 'other names got the same certificate')
        expect(sans_of(pems[0]) == want_sans(names), 'SANs %s' % sans_of(pems[0]))
        for s in started:
            self.stop(s)
        expect(serial_of(self.served(self.srv)) == self.serial,
               'the first certificate changed when another set of names got one')

    def service_names_only(self):
        # as the Helm chart sets them: no loopback name in the certificate
        names = [SVC, SVC + '.cluster.local']
        s = self.start(self.env(folder='f', names=names))
        try:
            self.healthy(self.channel(s))
            raise AssertionError('127.0.0.1 verified, but the certificate does not carry it')
        except self.grpc.RpcError as e:
            expect(e.code() == self.grpc.StatusCode.UNAVAILABLE,
                   'dialling 127.0.0.1: want UNAVAILABLE, got %s' % e.code())
        # the CLI in the pod dials 127.0.0.1 and checks the first Service name instead
        token_file = os.path.join(self.tmp, 'a', 'state', 'bootstrap-token')  # first server's
        rc, out = self.cli(s, 'ca', 'bundle', '--token-file', token_file)
        expect(rc == 0 and out.encode() == self.bundle,
               'trstctl ca bundle against Service names only: exit %d: %s' % (rc, out[-400:]))
        self.stop(s)

    def renews_without_restart(self):
        names = NAMES + ['renew.tls-test.svc']
        s = self.start(self.env(folder='d', names=names, TRSTCTL_SERVER_TLS_VALIDITY='20s',
                                TRSTCTL_SERVER_TLS_RENEW_BEFORE='14s'))
        try:
            self.renewal_on(s, names)
        except Exception:
            print('renewing server (last lines):\n%s' % s.log_tail(), flush=True)
            raise
        self.stop(s)

    def renewal_on(self, s, names):
        grpc = self.grpc
        old = self.authed(self.channel(s, name=SVC))
        expect(self.healthy(old), 'Health on the first connection')
        # measured after `old` connected: the change awaited below comes after it
        first = serial_of(self.served(s))
        audit = self.stubs['audit'](old)
        events = []
        got = threading.Event()

        def watch():
            try:
                for ev in audit.WatchEvents(self.pb['audit'].WatchEventsRequest(), timeout=60):
                    events.append(ev)
                    if ev.type == 'secret.created':
                        got.set()
                        return
            except grpc.RpcError as e:
                events.append(e)
                got.set()

        threading.Thread(target=watch, daemon=True).start()
        deadline = time.monotonic() + 40
        second = first
        while second == first and time.monotonic() < deadline:
            time.sleep(1)
            second = serial_of(self.served(s))  # a new connection each time, verified
        expect(second != first, 'no new certificate within 40 s (validity 20s)')
        expect('"reason":"renewal"' in s.log(), 'the log does not say renewal')
        new = self.authed(self.channel(s, name=SVC))
        self.stubs['secrets'](new).CreateSecret(
            self.pb['secrets'].CreateSecretRequest(name='tls/after-renewal', value=b'v'),
            timeout=10)
        expect(got.wait(20), 'the stream on the first connection went quiet')
        expect(not isinstance(events[-1], Exception),
               'the stream on the first connection failed: %s' % events[-1])
        expect(self.healthy(old), 'a unary call on the first connection after renewal')

    def audited(self):
        ch = self.authed(self.channel(self.srv, name=SVC))
        r = self.stubs['audit'](ch).ListEvents(
            self.pb['audit'].ListEventsRequest(type_prefix='server_certificate.', page_size=100),
            timeout=10)
        serials = {e.resource for e in r.events if e.type == 'server_certificate.issued'}
        expect('server_certificate/%s' % self.serial in serials,
               'no audit record of %s in %s' % (self.serial, sorted(serials)))
        reasons = ' '.join(e.data_json for e in r.events)
        for why in ('no certificate for these names yet', 'renewal'):
            expect(why in reasons, 'no audit record with reason %r' % why)

    def close(self):
        for s in list(self.servers):
            self.stop(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    dsn = os.environ.get('TRSTCTL_POSTGRES_DSN')
    if not dsn:
        harness.skip('no TRSTCTL_POSTGRES_DSN: run under server/db/run-with-pg.sh')
    if not shutil.which('openssl'):
        harness.skip('openssl command not found')
    tmp = tempfile.mkdtemp(prefix='trstctl-tls-')
    t = Test(args.trstctl, dsn, tmp)
    checks = harness.Checks('internal tls')
    try:
        for name, fn in (
                ('`trstctl ca bundle` prints the CA bundle', t.bundle_from_cli),
                ('grpcio verifies with the bundle; GetCABundle agrees', t.verified_calls),
                ('the served certificate carries exactly the configured names',
                 t.served_names),
                ('a name not in the certificate, or other roots: verification fails',
                 t.wrong_names_refused),
                ('a restart and a second replica serve the same certificate',
                 t.restart_reuses),
                ('other names: a certificate of their own, shared by servers starting at once',
                 t.other_names_other_cert),
                ('Service names only (the chart): 127.0.0.1 refused, the CLI verifies',
                 t.service_names_only),
                ('a short lifetime renews without restart; old connections keep working',
                 t.renews_without_restart),
                ('every issuance is audited with its reason', t.audited)):
            checks.server = t.srv
            if not checks.run(name, fn) and t.bundle is None:
                break
    finally:
        t.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.finish()


if __name__ == '__main__':
    raise SystemExit(main())
