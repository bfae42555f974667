#!/usr/bin/python3
"""COMP-03, served: offline issuance and secret management with zero public egress.

  test_comp03.py --trstctl PATH --call PATH [--enforcer ebpf|userspace]

The whole test re-runs itself inside new network and mount namespaces (only lo up, a
private bpffs; the furniture of test_guard.py), starts a real PostgreSQL and
`nats-server -js` on loopback in there (scripts/lib/services.sh), then twice runs
`trstctl serve` (air gap on, private destinations allowed, enforcer ebpf, TLS internal)
and walks the nine COMP-03 steps with the bootstrap token: once with Python grpcio (stubs
from clients/python) and once with the C client (trstctl-call's typed targets, on the
generated stubs of libtrstctl), each against its own database and cgroup:

  1 Guard.RunTripwire armed; tripwire >= 1 and trips == 0 in GetStatus, /metrics, bpftool
  2 CA.CreateOwner workload "airgap-payments"
  3 CA.CreateIdentity x509_certificate "offline-api.internal"
  4 CA.TransitionIdentity -> issued: `openssl verify` accepts the certificate against
    GetCABundle; identity.issued and certificate.recorded arrive on JetStream
  5 Secrets.CreateSecret "offline/db/password" = v1
  6 Secrets.RotateSecret -> version 2, GetSecret gives v2; secret.created and
    secret.rotated arrive on JetStream (and no event carries a secret value)
  7 Audit.VerifyChain ok, and the audit log holds each step
  8 trips still 0: the whole path attempted no public egress
  9 negative control: a process in the server's cgroup tries 1.1.1.1:443 over TCP and
    UDP -> EPERM, trips exactly 2, both in Guard.ListDenials, in the audit log
    (guard.denied) and on JetStream

JetStream is read with a minimal NATS client over the text protocol (class JetStream).
Where the eBPF guard cannot load (or with --enforcer userspace) the same flow runs with
the userspace enforcer and only the kernel assertions (armed, counters, bpftool, EPERM,
denials) are skipped, each saying so. Exit 77 with the reason when even that cannot run
(not root, no PostgreSQL, no nats-server). Servers, PostgreSQL, NATS, cgroups and mounts
are removed at the end, also on failure or SIGTERM.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import harness
from harness import expect
import test_guard

NS_MARK = 'TRSTCTL_COMP03_IN_NS'
STREAM = 'TRSTCTL_EVENTS'
OWNER = 'airgap-payments'
IDENTITY = 'offline-api.internal'
SECRET = 'offline/db/password'
V1, V2 = 'offline-secret-v1', 'offline-secret-v2'
PUBLIC = ('tcp:1.1.1.1:443', 'udp:1.1.1.1:443')
AUDIT_STEPS = ('owner.created', 'identity.created', 'identity.issued',
               'certificate.recorded', 'secret.created', 'secret.rotated')


class Terminated(BaseException):
    """SIGTERM (meson's timeout): not an Exception, so that no check swallows it."""


def on_term(signum, _frame):
    raise Terminated('signal %d' % signum)


def reexec_in_namespaces():
    """Runs this script again in fresh net + mount namespaces; forwards SIGTERM/SIGINT so
    that the inner run cleans up when meson times out."""
    if os.geteuid() != 0:
        harness.skip('needs root: a private network namespace (only lo up) is the only '
                     'safe place to try a public address, and the guard needs a cgroup')
    for tool in ('unshare', 'ip', 'mount'):
        if not shutil.which(tool):
            harness.skip('%s not found' % tool)
    env = dict(os.environ)
    env[NS_MARK] = '1'
    child = subprocess.Popen(['unshare', '-n', '-m', '--propagation', 'private',
                              sys.executable] + sys.argv, env=env)

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    sys.exit(child.wait())


# -- services -------------------------------------------------------------------------------

def services(script, *args, timeout=120):
    """Runs a snippet with scripts/lib/services.sh sourced; returns (rc, stdout, stderr)."""
    r = subprocess.run(['bash', '-c', '. "$0"; ' + script, harness.SERVICES_SH] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


class Services:
    """PostgreSQL (unix socket) and nats-server -js (127.0.0.1) in one temp folder."""

    def __init__(self, folder):
        self.dir = os.path.join(folder, 'svc')
        os.makedirs(self.dir)
        self.pg = self.nats = False
        self.dsn = None
        self.nats_port = None

    def start(self):
        if not shutil.which('nats-server'):
            harness.skip('nats-server not found (apt-get install nats-server)')
        self.pg = True
        rc, out, err = services('svc_pg_start "$1" >&2 && svc_pg_dsn "$1"', self.dir)
        if rc != 0 or not out:
            harness.skip('PostgreSQL cannot start here: %s' % err[-400:])
        self.dsn = out.splitlines()[-1]
        # the DSN names the password file (services.sh: every connection needs the password)
        r = subprocess.run(['psql', self.dsn, '-wXq', '-v', 'ON_ERROR_STOP=1',
                            '-c', 'CREATE DATABASE trstctl_c'], capture_output=True, text=True)
        expect(r.returncode == 0, 'CREATE DATABASE: %s' % r.stderr.strip())
        self.nats = True
        rc, out, err = services('p=$(svc_free_port) && svc_nats_start "$1" "$p" >&2 && '
                                'echo "$p"', self.dir)
        if rc != 0 or not out:
            harness.skip('nats-server -js cannot start here: %s' % err[-400:])
        self.nats_port = int(out.splitlines()[-1])

    def database(self, name):
        return self.dsn.replace('dbname=trstctl', 'dbname=' + name)

    def stop(self):
        if self.nats:
            services('svc_nats_stop "$1"', self.dir)
        if self.pg:
            services('svc_pg_destroy "$1"', self.dir)


# -- JetStream over the NATS text protocol --------------------------------------------------

class JetStream:
    """Just enough NATS to read a stream: CONNECT, SUB to an inbox, and request/reply with
    PUB <subject> <inbox>. JetStream's API answers JSON on the inbox:
      $JS.API.STREAM.INFO.<stream>     -> {"state": {"first_seq", "last_seq", ...}}
      $JS.API.STREAM.MSG.GET.<stream>  {"seq": N} -> {"message": {"subject", "seq",
                                          "hdrs" (base64 NATS/1.0 header block),
                                          "data" (base64)}} or {"error": {...}}
    The server's PING is answered with PONG. Not thread-safe; one request at a time."""

    INBOX = '_INBOX.comp03'

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.buf = b''
        info = self._line()
        expect(info.startswith(b'INFO '), 'NATS greeting %r' % info[:80])
        expect(json.loads(info[5:]).get('jetstream'), 'nats-server without JetStream')
        self._send(b'CONNECT {"verbose":false,"pedantic":false,"headers":false,'
                   b'"lang":"python","version":"0","protocol":1}\r\nPING\r\n')
        while True:
            line = self._line()
            if line == b'PONG':
                break
            expect(not line.startswith(b'-ERR'), 'NATS: %r' % line)
        self._send(('SUB %s 1\r\n' % self.INBOX).encode())

    def close(self):
        self.sock.close()

    def _send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError('NATS connection closed')
        self.buf += chunk

    def _line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload=b''):
        self._send(b'PUB %s %s %d\r\n%s\r\n' % (subject.encode(), self.INBOX.encode(),
                                               len(payload), payload))
        while True:
            line = self._line()
            if line == b'PING':
                self._send(b'PONG\r\n')
            elif line.startswith(b'MSG '):
                data = self._exact(int(line.split()[-1]))
                return json.loads(data)
            elif line.startswith(b'-ERR'):
                raise AssertionError('NATS: %r' % line)

    def last_seq(self):
        info = self.request('$JS.API.STREAM.INFO.' + STREAM)
        if 'error' in info:  # not created yet by the relay
            return 0
        return info['state']['last_seq']

    def messages(self, after):
        """The stream's messages with seq > after: dicts subject, seq, msg_id, event."""
        out = []
        for seq in range(after + 1, self.last_seq() + 1):
            r = self.request('$JS.API.STREAM.MSG.GET.' + STREAM,
                             json.dumps({'seq': seq}).encode())
            m = r.get('message')
            if not m:
                continue
            hdrs = base64.b64decode(m.get('hdrs', '')).decode('utf-8', 'replace')
            msg_id = re.search(r'(?im)^Nats-Msg-Id:\s*(\S+)', hdrs)
            out.append({'subject': m['subject'], 'seq': m['seq'],
                        'msg_id': msg_id.group(1) if msg_id else None,
                        'raw': base64.b64decode(m.get('data', '')).decode('utf-8', 'replace')})
        return out


# -- the two clients ------------------------------------------------------------------------

class PyClient:
    """The flow over grpcio with the stubs generated from api/."""

    name = 'python'

    def __init__(self, srv, token):
        import grpc
        import audit_pb2
        import audit_pb2_grpc
        import ca_pb2
        import ca_pb2_grpc
        import guard_pb2
        import guard_pb2_grpc
        import secrets_pb2
        import secrets_pb2_grpc
        self.ca_pb2, self.secrets_pb2 = ca_pb2, secrets_pb2
        self.audit_pb2, self.guard_pb2 = audit_pb2, guard_pb2
        ch = harness.with_token(harness.channel(srv.addr, 'tls', srv.internal_ca_pem()),
                                token)
        self.grpc = grpc
        self.ca = ca_pb2_grpc.CAStub(ch)
        self.secrets = secrets_pb2_grpc.SecretsStub(ch)
        self.audit = audit_pb2_grpc.AuditStub(ch)
        self.guard = guard_pb2_grpc.GuardStub(ch)

    def unimplemented(self):
        try:
            self.ca.CreateOwner(self.ca_pb2.CreateOwnerRequest(), timeout=10)
        except self.grpc.RpcError as e:
            return e.code() == self.grpc.StatusCode.UNIMPLEMENTED
        return False

    def status(self):
        s = self.guard.GetStatus(self.guard_pb2.GetStatusRequest(), timeout=10)
        return {'enabled': s.enabled, 'enforcer': s.enforcer, 'armed': s.armed,
                'trips': s.trips, 'tripwire_hits': s.tripwire_hits,
                'userspace_trips': s.userspace_trips}

    def run_tripwire(self):
        t = self.guard.RunTripwire(self.guard_pb2.RunTripwireRequest(), timeout=10)
        return {'armed': t.armed, 'detail': t.detail}

    def create_owner(self, kind, name):
        o = self.ca.CreateOwner(self.ca_pb2.CreateOwnerRequest(kind=kind, name=name),
                                timeout=10)
        return {'id': o.id, 'kind': o.kind, 'name': o.name}

    def create_identity(self, kind, name, owner_id, dns):
        i = self.ca.CreateIdentity(self.ca_pb2.CreateIdentityRequest(
            kind=kind, name=name, owner_id=owner_id, dns_names=dns), timeout=10)
        return {'id': i.id, 'state': i.state, 'owner_id': i.owner_id}

    def transition(self, ident, to, reason):
        i = self.ca.TransitionIdentity(self.ca_pb2.TransitionIdentityRequest(
            id=ident, to=to, reason=reason), timeout=30)
        return {'state': i.state, 'serial': i.certificate.serial, 'pem': i.certificate.pem}

    def ca_bundle(self):
        return self.ca.GetCABundle(self.ca_pb2.GetCABundleRequest(), timeout=10).pem

    def create_secret(self, name, value):
        m = self.secrets.CreateSecret(self.secrets_pb2.CreateSecretRequest(
            name=name, value=value.encode()), timeout=10)
        return {'version': m.version}

    def rotate_secret(self, name, value):
        m = self.secrets.RotateSecret(self.secrets_pb2.RotateSecretRequest(
            name=name, value=value.encode()), timeout=10)
        return {'version': m.version}

    def get_secret(self, name):
        s = self.secrets.GetSecret(self.secrets_pb2.GetSecretRequest(name=name), timeout=10)
        return {'version': s.version, 'value': s.value.decode()}

    def verify_chain(self):
        v = self.audit.VerifyChain(self.audit_pb2.VerifyChainRequest(), timeout=30)
        return {'ok': v.ok, 'checked': v.checked}

    def list_events(self):
        out, token = [], ''
        while True:
            r = self.audit.ListEvents(self.audit_pb2.ListEventsRequest(
                page_size=100, page_token=token), timeout=10)
            out += [{'type': e.type, 'outcome': e.outcome, 'resource': e.resource,
                     'data': e.data_json} for e in r.events]
            token = r.next_page_token
            if not token:
                return out

    def list_denials(self):
        r = self.guard.ListDenials(self.guard_pb2.ListDenialsRequest(), timeout=10)
        return [{'address': d.address, 'port': d.port, 'protocol': d.protocol}
                for d in r.denials]


class CClient:
    """The flow with trstctl-call's typed targets (libtrstctl's generated stubs). The
    token goes in the environment (TRSTCTL_TOKEN), never on the command line."""

    name = 'c'

    def __init__(self, srv, token, call):
        self.argv = [call, '--addr', srv.addr, '--tls-ca',
                     os.path.join(srv.env['TRSTCTL_STATE_DIR'], 'ca-bundle.pem'),
                     '--server-name', 'localhost', '--deadline-ms', '30000']
        self.env = dict(os.environ, TRSTCTL_TOKEN=token)

    def run(self, *args, stdin=None, expect_ok=True):
        r = subprocess.run(self.argv + list(args), env=self.env, input=stdin,
                           capture_output=True, text=True, timeout=60)
        status = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''
        if expect_ok:
            expect(r.returncode == 0, 'trstctl-call %s: exit %d, %s %s' % (
                args[0], r.returncode, status, r.stderr.strip()))
        return r.stdout, status

    def kv(self, *args, stdin=None):
        out, _ = self.run(*args, stdin=stdin)
        d = {}
        for line in out.splitlines():
            k, sep, v = line.partition(': ')
            if sep and k not in d:
                d[k] = v
        return d, out

    def unimplemented(self):
        _, status = self.run('create-owner', 'workload', 'x', expect_ok=False)
        return 'UNIMPLEMENTED' in status

    def status(self):
        d, _ = self.kv('guard-status')
        return {'enabled': d['enabled'] == 'true', 'enforcer': d['enforcer'],
                'armed': d['armed'] == 'true', 'trips': int(d['trips']),
                'tripwire_hits': int(d['tripwire_hits']),
                'userspace_trips': int(d['userspace_trips'])}

    def run_tripwire(self):
        d, _ = self.kv('run-tripwire')
        return {'armed': d['armed'] == 'true', 'detail': d['detail']}

    def create_owner(self, kind, name):
        d, _ = self.kv('create-owner', kind, name)
        return {'id': d['id'], 'kind': d['kind'], 'name': d['name']}

    def create_identity(self, kind, name, owner_id, dns):
        d, _ = self.kv('create-identity', kind, name, owner_id, *dns)
        return {'id': d['id'], 'state': d['state'], 'owner_id': d['owner_id']}

    def transition(self, ident, to, reason):
        d, out = self.kv('transition-identity', ident, to, reason)
        pem = re.search(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n', out,
                        re.S)
        return {'state': d['state'], 'serial': d.get('certificate.serial', ''),
                'pem': pem.group(0) if pem else ''}

    def ca_bundle(self):
        out, _ = self.run('ca-bundle')
        return ''.join(re.findall(r'-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n',
                                  out, re.S))

    def create_secret(self, name, value):
        d, _ = self.kv('create-secret', name, stdin=value)
        return {'version': int(d['version'])}

    def rotate_secret(self, name, value):
        d, _ = self.kv('rotate-secret', name, stdin=value)
        return {'version': int(d['version'])}

    def get_secret(self, name):
        d, _ = self.kv('get-secret', name)
        return {'version': int(d['version']), 'value': d['value']}

    def verify_chain(self):
        d, _ = self.kv('verify-chain')
        return {'ok': d['ok'] == 'true', 'checked': int(d['checked'])}

    def list_events(self):
        out, _ = self.run('list-events')
        evs = []
        for line in out.splitlines():
            if line.startswith('event: '):
                _, _, typ, outcome, resource = line.split(' ', 4)
                evs.append({'type': typ, 'outcome': outcome, 'resource': resource,
                            'data': None})
        return evs

    def list_denials(self):
        out, _ = self.run('list-denials')
        res = []
        for line in out.splitlines():
            if line.startswith('denial: '):
                f = line.split()
                res.append({'address': f[1], 'port': int(f[2]), 'protocol': f[3]})
        return res


# -- the flow -------------------------------------------------------------------------------

def kernel_counters(pin):
    r = subprocess.run(['bpftool', '-j', 'map', 'dump', 'pinned', os.path.join(pin, 'trips')],
                       capture_output=True, text=True)
    expect(r.returncode == 0, 'bpftool: %s' % r.stderr.strip())
    return json.loads(r.stdout)[0]['formatted']['value']


def metric_counters(srv):
    code, text = test_guard.http_get(test_guard.metrics_port(srv), '/metrics')
    expect(code == 200, '/metrics answered %d' % code)
    m = test_guard.parse_metrics(text)
    return {'trips': sum(v for k, v in m.items()
                         if k.startswith('trstctl_egress_guard_trips_total')),
            'tripwire_hits': m.get('trstctl_egress_guard_tripwire_hits_total'),
            'armed': m.get('trstctl_egress_guard_armed'),
            'userspace_trips': sum(v for k, v in m.items() if k.startswith(
                'trstctl_egress_guard_userspace_trips_total'))}


class Flow:
    """The nine steps against one server with one client."""

    def __init__(self, run, client, srv, js, kernel):
        self.run, self.cl, self.srv, self.js, self.kernel = run, client, srv, js, kernel
        self.pin = srv.env['TRSTCTL_AIRGAP_BPF_PIN_PATH']
        self.cg = srv.env['TRSTCTL_AIRGAP_CGROUP']
        self.seq0 = js.last_seq()  # JetStream messages of this server come after this
        self.tmp = os.path.join(srv.state_dir, 'comp03')
        os.makedirs(self.tmp)
        self.ids = {}

    def trips_are(self, n, why):
        s = self.cl.status()
        expect(s['trips'] == n, 'GetStatus trips %d, want %d (%s)' % (s['trips'], n, why))
        expect(s['userspace_trips'] == 0, 'userspace trips %d' % s['userspace_trips'])
        m = metric_counters(self.srv)
        expect(m['trips'] == n, '/metrics trips %d, want %d' % (m['trips'], n))
        expect(m['userspace_trips'] == 0, '/metrics userspace trips %d' % m['userspace_trips'])
        expect(m['tripwire_hits'] == s['tripwire_hits'], '/metrics tripwire %s, status %d' % (
            m['tripwire_hits'], s['tripwire_hits']))
        if self.kernel:
            k = kernel_counters(self.pin)
            expect(k['total'] == n and k['tripwire'] == s['tripwire_hits'],
                   'bpftool %s, want total %d tripwire %d' % (k, n, s['tripwire_hits']))
        return s

    def events(self, want, timeout=15.0):
        """Waits until JetStream holds an event of each subject in want whose envelope
        passes the predicate want[subject]; returns {subject: envelope}."""
        deadline = time.monotonic() + timeout
        while True:
            found = {}
            msgs = self.js.messages(self.seq0)
            for m in msgs:
                subj = m['subject']
                if subj not in want or subj in found:
                    continue
                env = json.loads(m['raw'])
                if want[subj](env, m['raw']):
                    expect(set(env) >= {'id', 'type', 'tenant_id', 'time', 'actor', 'data'},
                           'envelope keys %s' % sorted(env))
                    expect('events.' + env['type'] == subj, 'type %r on %s' % (env['type'],
                                                                               subj))
                    expect(m['msg_id'] == env['id'], 'Nats-Msg-Id %r, event id %r' % (
                        m['msg_id'], env['id']))
                    found[subj] = env
            for m in msgs:
                expect(V1 not in m['raw'] and V2 not in m['raw'],
                       'a secret value is in the event on %s' % m['subject'])
            if len(found) == len(want):
                for subj, env in sorted(found.items()):
                    print('  JetStream %s id %s data %s' % (subj, env['id'],
                                                          json.dumps(env['data'])[:160]))
                return found
            if time.monotonic() > deadline:
                raise AssertionError('JetStream: missing %s (have %s)' % (
                    sorted(set(want) - set(found)), sorted({m['subject'] for m in msgs})))
            time.sleep(0.2)

    # the steps

    def step1(self):
        t = self.cl.run_tripwire()
        if not self.kernel:
            expect(not t['armed'], 'RunTripwire says armed with the userspace enforcer')
            s = self.cl.status()
            expect(s['enabled'] and s['enforcer'] == 'userspace', 'status %s' % s)
            print('SKIP (kernel): armed, tripwire counter and bpftool need the eBPF guard')
            self.trips_are(0, 'after start-up')
            return
        expect(t['armed'], 'RunTripwire: %s' % t)
        s = self.trips_are(0, 'after the tripwire')
        expect(s['enabled'] and s['enforcer'] == 'ebpf' and s['armed'], 'status %s' % s)
        expect(s['tripwire_hits'] >= 1, 'tripwire hits %d' % s['tripwire_hits'])
        print('  guard: %s; bpftool %s' % (s, kernel_counters(self.pin)))
        expect(metric_counters(self.srv)['armed'] == 1, 'trstctl_egress_guard_armed != 1')

    def step2(self):
        o = self.cl.create_owner('workload', OWNER)
        expect(o['id'] and o['kind'] == 'workload' and o['name'] == OWNER, 'owner %s' % o)
        self.ids['owner'] = o['id']

    def step3(self):
        expect('owner' in self.ids, 'no owner from step 2')
        i = self.cl.create_identity('x509_certificate', IDENTITY, self.ids['owner'],
                                    [IDENTITY])
        expect(i['id'] and i['state'] == 'requested' and i['owner_id'] == self.ids['owner'],
               'identity %s' % i)
        self.ids['identity'] = i['id']

    def step4(self):
        expect('identity' in self.ids, 'no identity from step 3')
        ident = self.ids['identity']
        r = self.cl.transition(ident, 'issued', 'COMP-03 offline issuance')
        expect(r['state'] == 'issued' and r['serial'] and 'BEGIN CERTIFICATE' in r['pem'],
               'transition: state %r serial %r' % (r['state'], r['serial']))
        cert, bundle = os.path.join(self.tmp, 'cert.pem'), os.path.join(self.tmp, 'ca.pem')
        with open(cert, 'w') as f:
            f.write(r['pem'])
        with open(bundle, 'w') as f:
            f.write(self.cl.ca_bundle())
        code, out = harness.run_cmd(['openssl', 'verify', '-CAfile', bundle, cert])
        expect(code == 0 and out.strip().endswith('OK'), 'openssl verify: %s' % out.strip())
        code, out = harness.run_cmd(['openssl', 'x509', '-in', cert, '-noout', '-ext',
                                     'subjectAltName'])
        expect(code == 0 and 'DNS:' + IDENTITY in out, 'SAN: %s' % out.strip())
        print('  issued serial %s; openssl verify: OK' % r['serial'])
        serial = r['serial'].lower().replace(':', '').lstrip('0')

        def about_cert(_env, raw):
            low = raw.lower()
            return ident in raw or (serial and serial in low.replace(':', ''))

        self.events({'events.identity.issued': lambda env, raw: ident in raw,
                     'events.certificate.recorded': about_cert})

    def step5(self):
        m = self.cl.create_secret(SECRET, V1)
        expect(m['version'] == 1, 'CreateSecret version %d, want 1' % m['version'])

    def step6(self):
        m = self.cl.rotate_secret(SECRET, V2)
        expect(m['version'] == 2, 'RotateSecret version %d, want 2' % m['version'])
        s = self.cl.get_secret(SECRET)
        expect(s['version'] == 2 and s['value'] == V2, 'GetSecret: version %d, value %s' % (
            s['version'], 'v2' if s['value'] == V2 else 'not v2'))

        def about(env, raw):
            return SECRET in raw

        self.events({'events.secret.created': about, 'events.secret.rotated': about})

    def step7(self):
        v = self.cl.verify_chain()
        expect(v['ok'] and v['checked'] >= len(AUDIT_STEPS), 'VerifyChain %s' % v)
        evs = self.cl.list_events()
        types = [e['type'] for e in evs]
        for t in AUDIT_STEPS:
            expect(t in types, 'audit log has no %s (types: %s)' % (t, sorted(set(types))))
        expect(any(e['type'] == 'secret.rotated' and SECRET in e['resource'] for e in evs),
               'no secret.rotated record for %s' % SECRET)
        for e in evs:
            expect(e['data'] is None or (V1 not in e['data'] and V2 not in e['data']),
                   'a secret value is in the audit record %s' % e['type'])

    def step8(self):
        self.trips_are(0, 'the issuance and secret path must attempt no public egress')

    def step9(self):
        if not self.kernel:
            print('SKIP (kernel): EPERM from the cgroup, the trip counter and denials need '
                  'the eBPF guard; the userspace enforcer only checks the server\'s own '
                  'clients')
            return
        got = test_guard.probe_in_cgroup(ENV, self.cg, *PUBLIC)
        expect(got == ['errno1', 'errno1'], 'TCP, UDP to 1.1.1.1:443: %s, want EPERM' % got)
        self.trips_are(2, 'after the negative control')
        deadline = time.monotonic() + 10
        while True:
            den = [d for d in self.cl.list_denials()
                   if d['address'] == '1.1.1.1' and d['port'] == 443]
            aud = [e for e in self.cl.list_events()
                   if e['type'] == 'guard.denied' and e['resource'] == '1.1.1.1:443']
            if (len(den) >= 2 and len(aud) >= 2) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        expect(sorted(d['protocol'] for d in den) == ['tcp', 'udp'], 'denials %s' % den)
        print('  probe %s -> %s; denials %s' % (' '.join(PUBLIC), got, den))
        expect(len(aud) == 2 and all(e['outcome'] == 'denied' for e in aud),
               'guard.denied audit records %s' % aud)
        self.events({'events.guard.denied': lambda env, raw: '1.1.1.1' in raw})
        v = self.cl.verify_chain()
        expect(v['ok'], 'VerifyChain after the denials %s' % v)

    def all(self):
        for n, title in ((1, 'RunTripwire armed; tripwire >= 1, trips 0 (GetStatus, '
                             '/metrics, bpftool)'),
                         (2, 'CreateOwner workload %s' % OWNER),
                         (3, 'CreateIdentity x509_certificate %s' % IDENTITY),
                         (4, 'TransitionIdentity -> issued; openssl verify; identity.issued '
                             '+ certificate.recorded on JetStream'),
                         (5, 'CreateSecret %s v1' % SECRET),
                         (6, 'RotateSecret -> v2; GetSecret v2; secret.created + '
                             'secret.rotated on JetStream'),
                         (7, 'VerifyChain ok; the audit log holds each step'),
                         (8, 'trips still 0: no public egress attempted'),
                         (9, 'negative control: public TCP+UDP from the cgroup -> EPERM, '
                             'trips 2, ListDenials, audit guard.denied')):
            self.run('%s step %d: %s' % (self.cl.name, n, title), getattr(self, 'step%d' % n))


ENV = None  # the test_guard.Env of this run (probe_in_cgroup needs it)


def start_server(exe, env, tag, enforcer, dsn, nats_port):
    senv = test_guard.server_env(
        env, tag, TRSTCTL_AIRGAP_ENFORCER=enforcer, TRSTCTL_AIRGAP_ALLOW_PRIVATE='true',
        TRSTCTL_SERVER_TLS_MODE='internal', TRSTCTL_DEV_ALLOW_PLAINTEXT='false',
        TRSTCTL_POSTGRES_DSN=dsn, TRSTCTL_NATS_URL='nats://127.0.0.1:%d' % nats_port)
    srv = harness.Server(exe, env=senv)
    try:
        srv.start()
    except harness.ServerError as e:
        log = srv.log()
        srv.stop()
        shutil.rmtree(srv.state_dir, ignore_errors=True)
        cannot = 'cannot start the egress guard' in log and (
            'CAP_BPF' in log or 'Operation not supported' in log or 'not permitted' in log)
        return None, ('bpf' if cannot else '%s\n%s' % (e, '\n'.join(log.splitlines()[-15:])))
    return srv, None


def main():
    if os.environ.get(NS_MARK) != '1':
        reexec_in_namespaces()
    signal.signal(signal.SIGTERM, on_term)
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--call', required=True)
    ap.add_argument('--enforcer', choices=('ebpf', 'userspace'), default='ebpf')
    args = ap.parse_args()
    harness.need_grpc()
    for exe in (args.trstctl, args.call):
        if not os.access(exe, os.X_OK):
            harness.skip('not built: %s' % exe)
    for tool in ('openssl', 'psql'):
        if not shutil.which(tool):
            harness.skip('%s not found' % tool)

    global ENV
    ENV = test_guard.Env()
    svc = Services(ENV.tmp)
    started = time.monotonic()
    try:
        ENV.setup()
        svc.start()
        rc = run(args, svc)
    except Terminated as e:
        print('FAIL: terminated (%s); cleaning up' % e)
        rc = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        svc.stop()
        ENV.cleanup()
    print('COMP-03 took %.1f s' % (time.monotonic() - started))
    return rc


def run(args, svc):
    checks = harness.Checks('comp03')
    enforcer = args.enforcer
    if enforcer == 'ebpf' and not shutil.which('bpftool'):
        print('bpftool not found: running with the userspace enforcer')
        enforcer = 'userspace'
    js = JetStream(svc.nats_port)
    try:
        for tag, db, make in (('py', 'trstctl', lambda s, t: PyClient(s, t)),
                              ('c', 'trstctl_c', lambda s, t: CClient(s, t, args.call))):
            srv, why = start_server(args.trstctl, ENV, tag, enforcer, svc.database(db),
                                    svc.nats_port)
            if why == 'bpf' and enforcer == 'ebpf':
                print('SKIP (kernel): the eBPF guard cannot load here; the flow runs with '
                      'TRSTCTL_AIRGAP_ENFORCER=userspace and skips the kernel assertions')
                enforcer = 'userspace'
                srv, why = start_server(args.trstctl, ENV, tag + 'u', enforcer,
                                        svc.database(db), svc.nats_port)
            if srv is None:
                print('FAIL start (%s): %s' % (tag, why))
                checks.failed.append('start ' + tag)
                continue
            checks.server = srv
            try:
                client = make(srv, srv.bootstrap_token())
                Flow(checks.run, client, srv, js, enforcer == 'ebpf').all()
            finally:
                checks.server = None
                srv.stop()
                shutil.rmtree(srv.state_dir, ignore_errors=True)
    finally:
        js.close()
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
