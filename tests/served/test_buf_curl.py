#!/usr/bin/python3
"""The served API through an independent client: `buf curl` (Go, connect-go's gRPC
protocol, server reflection for the schema) next to grpcio.

  test_buf_curl.py --trstctl PATH

The server runs in its default TLS mode (internal: a certificate from the built-in CA for
localhost and 127.0.0.1), and buf curl verifies it with the CA bundle the server wrote to
<state_dir>/ca-bundle.pem (--cacert), as docs/api.md tells clients to; never --insecure.
Every call is `buf curl --protocol grpc` to https://127.0.0.1:PORT (HTTP/2 by ALPN).

  - reflection, both versions the server serves (--reflect-protocol grpc-v1, grpc-v1alpha):
    --list-services names the five trstctl services, health and reflection;
    --list-methods names, for each trstctl service, exactly the methods of the protos
    (as grpcio's generated descriptors have them);
  - Health.Check with no token: SERVING;
  - CA.CreateOwner with the bootstrap token (read by buf curl from a header file, so the
    token is never in argv): the owner buf curl created is what grpcio's GetOwner returns,
    and a retry with the same request_id returns the same owner;
  - bad calls surface their code (buf curl exits with code << 3 and prints it): an unknown
    owner id is NOT_FOUND, an unknown kind INVALID_ARGUMENT listing the accepted kinds, a
    call without a token UNAUTHENTICATED;
  - the verification is real: the system roots instead of the bundle fail the handshake.

Exits 77 when the binary, grpcio or PostgreSQL are missing, or when buf was never fetched
(scripts/install-deps); a buf that install-deps failed to fetch fails (tests/api/buftool.py).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import harness
from harness import expect

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'api'))
import buftool  # noqa: E402

TRSTCTL_SERVICES = ['CA', 'Secrets', 'Audit', 'Policy', 'Guard', 'Assist']
# gRPC status codes as buf curl names them, and its exit code for each (code << 3).
NOT_FOUND, INVALID_ARGUMENT, UNAUTHENTICATED = 5, 3, 16


class Test:
    def __init__(self, exe, tmp):
        import grpc
        import ca_pb2
        import ca_pb2_grpc
        self.grpc, self.ca_pb2, self.ca_pb2_grpc = grpc, ca_pb2, ca_pb2_grpc
        self.exe, self.tmp = exe, tmp
        self.buf = buftool.find()
        self.srv = None
        self.bundle = None
        self.headers = None
        self.owner = None

    def start(self):
        self.srv = harness.Server(self.exe, start_timeout=60)
        self.srv.start()
        token, self.bundle = self.srv.client_files(os.path.join(self.tmp, 'client'))
        # the header file buf curl reads (-H @file): the token stays out of argv
        self.headers = os.path.join(self.tmp, 'client', 'headers')
        fd = os.open(self.headers, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write('authorization: Bearer %s\n' % self.srv.bootstrap_token())
        os.unlink(token)

    @property
    def base(self):
        return 'https://127.0.0.1:%d' % self.srv.port

    def curl(self, *args, cacert=True, auth=False, data=None):
        """Runs buf curl --protocol grpc; returns (exit code, stdout, stderr)."""
        argv = [self.buf, 'curl', '--protocol', 'grpc', '--connect-timeout', '10']
        if cacert:
            argv += ['--cacert', self.bundle]
        if auth:
            argv += ['-H', '@' + self.headers]
        if data is not None:
            argv += ['-d', json.dumps(data)]
        r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def call(self, method, data=None, auth=True):
        rc, out, err = self.curl(self.base + '/' + method, auth=auth, data=data)
        expect(rc == 0, 'buf curl %s: exit %d: %s' % (method, rc, err.strip()[-600:]))
        return json.loads(out)

    def fails(self, method, data, code, auth=True):
        """Calls method, expects gRPC status code; returns buf curl's error object."""
        rc, out, err = self.curl(self.base + '/' + method, auth=auth, data=data)
        expect(rc == code << 3, '%s: want exit %d (code %d), got %d: %s%s'
               % (method, code << 3, code, rc, out, err.strip()[-600:]))
        try:
            e = json.loads(err)
        except ValueError:
            raise AssertionError('%s: buf curl printed no JSON error: %r' % (method, err[-600:]))
        print('    %s: exit %d, %s: %s' % (method, rc, e.get('code'), e.get('message')))
        return e

    def grpcio_ca(self):
        ch = self.grpc.secure_channel(self.srv.addr, self.grpc.ssl_channel_credentials(
            root_certificates=harness.read(self.bundle)))
        return self.ca_pb2_grpc.CAStub(harness.with_token(ch, self.srv.bootstrap_token()))

    # -- checks ---------------------------------------------------------------------------

    def list_services(self):
        want = {'trstctl.v1.' + s for s in TRSTCTL_SERVICES} | {
            'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection',
            'grpc.reflection.v1alpha.ServerReflection'}
        for proto in ('grpc-v1', 'grpc-v1alpha'):
            rc, out, err = self.curl('--list-services', '--reflect-protocol', proto, self.base)
            expect(rc == 0, 'buf curl --list-services (%s): exit %d: %s' % (proto, rc, err))
            got = set(out.split())
            expect(want <= got, 'reflection %s lists %s; missing %s'
                   % (proto, sorted(got), sorted(want - got)))

    def list_methods(self):
        import assist_pb2
        import audit_pb2
        import guard_pb2
        import policy_pb2
        import secrets_pb2
        files = {'CA': self.ca_pb2, 'Secrets': secrets_pb2, 'Audit': audit_pb2,
                 'Policy': policy_pb2, 'Guard': guard_pb2, 'Assist': assist_pb2}
        want = sorted('trstctl.v1.%s/%s' % (svc, m.name) for svc in TRSTCTL_SERVICES
                      for m in files[svc].DESCRIPTOR.services_by_name[svc].methods)
        for proto in ('grpc-v1', 'grpc-v1alpha'):
            rc, out, err = self.curl('--list-methods', '--reflect-protocol', proto, self.base)
            expect(rc == 0, 'buf curl --list-methods (%s): exit %d: %s' % (proto, rc, err))
            got = sorted(m for m in out.split() if m.startswith('trstctl.v1.'))
            expect(got == want, 'reflection %s: only there %s; only in the protos %s'
                   % (proto, sorted(set(got) - set(want)), sorted(set(want) - set(got))))
            expect('grpc.health.v1.Health/Check' in out.split(),
                   'reflection %s lists no grpc.health.v1.Health/Check' % proto)

    def health(self):
        got = self.call('grpc.health.v1.Health/Check', auth=False)
        expect(got == {'status': 'SERVING'}, 'Health.Check: %s' % got)

    def create_owner(self):
        req = {'requestId': str(uuid.uuid4()), 'kind': 'workload', 'name': 'buf-curl',
               'email': 'buf@example.test'}
        self.owner = self.call('trstctl.v1.CA/CreateOwner', req)
        expect(self.owner.get('id') and self.owner.get('kind') == 'workload' and
               self.owner.get('createTime'), 'CreateOwner replied %s' % self.owner)
        again = self.call('trstctl.v1.CA/CreateOwner', req)
        expect(again == self.owner, 'a retry with the same request_id: %s, first %s'
               % (again, self.owner))
        got = self.grpcio_ca().GetOwner(self.ca_pb2.GetOwnerRequest(id=self.owner['id']),
                                        timeout=10)
        expect((got.id, got.kind, got.name, got.email) ==
               (self.owner['id'], 'workload', 'buf-curl', 'buf@example.test'),
               'grpcio GetOwner: %s' % got)
        # and the other way round: buf curl reads what it created, by its snake_case name
        back = self.call('trstctl.v1.CA/GetOwner', {'id': self.owner['id']})
        expect(back == self.owner, 'GetOwner through buf curl: %s' % back)

    def bad_calls(self):
        e = self.fails('trstctl.v1.CA/GetOwner', {'id': str(uuid.uuid4())}, NOT_FOUND)
        expect(e.get('code') == 'not_found' and e.get('message'), 'NOT_FOUND: %s' % e)
        e = self.fails('trstctl.v1.CA/CreateOwner',
                       {'request_id': str(uuid.uuid4()), 'kind': 'robot', 'name': 'x'},
                       INVALID_ARGUMENT)
        msg = e.get('message', '')
        expect(e.get('code') == 'invalid_argument' and
               all(k in msg for k in ('user', 'team', 'workload', 'service', 'vendor')),
               'INVALID_ARGUMENT does not list the accepted kinds: %s' % e)
        e = self.fails('trstctl.v1.CA/ListOwners', {}, UNAUTHENTICATED, auth=False)
        expect(e.get('code') == 'unauthenticated', 'UNAUTHENTICATED: %s' % e)

    def verification_real(self):
        # -v: buf curl then says why (without it, a failed reflection handshake reads
        # "failed to find service named ... in schema")
        rc, out, err = self.curl('-v', self.base + '/grpc.health.v1.Health/Check',
                                 cacert=False)
        expect(rc != 0 and not out and 'could not be verified' in err,
               'the system roots accepted the internal certificate: exit %d %s%s'
               % (rc, out, err[-600:]))

    def close(self):
        if self.srv is not None:
            self.srv.__exit__(None, None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    buftool.find()  # skips or fails before anything is made
    tmp = tempfile.mkdtemp(prefix='trstctl-bufcurl-')
    t = Test(args.trstctl, tmp)
    checks = harness.Checks('buf curl')
    try:
        if not checks.run('the server starts (internal TLS)', t.start):
            return checks.finish()
        checks.server = t.srv
        for name, fn in (
                ('reflection v1 and v1alpha list the services', t.list_services),
                ('reflection lists exactly the methods of the protos', t.list_methods),
                ('Health.Check without a token: SERVING', t.health),
                ('CA.CreateOwner with the token; grpcio reads the same owner',
                 t.create_owner),
                ('NOT_FOUND, INVALID_ARGUMENT and UNAUTHENTICATED surface', t.bad_calls),
                ('without the CA bundle the handshake fails', t.verification_real)):
            checks.run(name, fn)
    finally:
        t.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.finish()


if __name__ == '__main__':
    raise SystemExit(main())
