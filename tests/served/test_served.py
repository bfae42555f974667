#!/usr/bin/python3
"""Served end-to-end tests: `trstctl serve` on a kernel-chosen loopback port, called with
Python grpcio (stubs generated at build time) and with the C client (trstctl-call, on
libtrstctl's generated stubs).

  test_served.py --mode plaintext|tls|mtls --trstctl PATH --call PATH

plaintext: TLS disabled (dev override). tls: the internal certificate from the built-in
CA, verified with the CA bundle the server wrote to its state folder. mtls: file mode with
certificates made here by openssl and a client CA; a client without a certificate, or with
one from another CA, is refused.

Every check prints what it checks; all run even after a failure; exit 1 if any failed,
77 if the test cannot run here.
"""

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import reflection_pb2  # noqa: E402
import reflection_pb2_grpc  # noqa: E402
import reflection_v1alpha_pb2  # noqa: E402
import reflection_v1alpha_pb2_grpc  # noqa: E402

MAX_REQUEST = 1024
GRACE_S = 2.0
# Set from the server's bootstrap (admin) token once it runs.
TOKEN = None
AUTH = None
EXPECTED_SERVICES = {
    'trstctl.v1.CA', 'trstctl.v1.Secrets', 'trstctl.v1.Audit', 'trstctl.v1.Policy',
    'trstctl.v1.Guard', 'trstctl.v1.Assist', 'grpc.health.v1.Health',
    'grpc.reflection.v1.ServerReflection',
    'grpc.reflection.v1alpha.ServerReflection',
}
REFLECTION = {
    'v1': (reflection_pb2, reflection_pb2_grpc),
    'v1alpha': (reflection_v1alpha_pb2, reflection_v1alpha_pb2_grpc),
}
SERVING = health_pb2.HealthCheckResponse.SERVING


def raw_unary(ch, path, body, timeout=10):
    """Calls path with raw bytes; returns (code, details, reply bytes)."""
    fn = ch.unary_unary(path)
    try:
        resp = fn(body, timeout=timeout, metadata=AUTH)
        return grpc.StatusCode.OK, '', resp
    except grpc.RpcError as e:
        return e.code(), e.details() or '', None


def expect_code(got, want, what):
    code, details = got[0], got[1]
    expect(code == want, '%s: want %s, got %s (%r)' % (what, want.name, code.name, details))


def sized_health_request(size):
    """A valid HealthCheckRequest of exactly size bytes (a long service name)."""
    for name_len in range(size, 0, -1):
        b = health_pb2.HealthCheckRequest(service='a' * name_len).SerializeToString()
        if len(b) == size:
            return b
    raise ValueError(size)


class Suite:
    def __init__(self, args, server, grpc_creds, c_args):
        self.args = args
        self.server = server
        self.grpc_creds = grpc_creds  # kwargs for harness.channel
        self.c_args = c_args          # transport arguments for trstctl-call
        self.ch = self.channel()

    def channel(self, **override):
        kw = dict(self.grpc_creds)
        kw.update(override)
        return harness.channel(self.server.addr, **kw)

    # -- C client ------------------------------------------------------------------

    def call(self, *argv, transport=None, timeout=30):
        cmd = [self.args.call, '--addr', self.server.addr, '--token', TOKEN]
        cmd += self.c_args if transport is None else transport
        cmd += list(argv)
        rc, out = harness.run_cmd(cmd, timeout=timeout)
        print('  $ trstctl-call %s -> exit %d: %s'
              % (' '.join(argv), rc, out.strip().replace('\n', ' | ')[:300]))
        return rc, out

    def c_expect(self, want_code, *argv, contains=None, transport=None):
        rc, out = self.call('--expect', want_code, *argv, transport=transport)
        expect(rc == 0, 'trstctl-call %s: wanted status %s, got: %s'
               % (' '.join(argv), want_code, out.strip()))
        if contains:
            expect(contains in out, 'trstctl-call %s: output lacks %r: %s'
                   % (' '.join(argv), contains, out.strip()))
        return out

    # -- checks --------------------------------------------------------------------

    def health_serving(self):
        resp = health_pb2_grpc.HealthStub(self.ch).Check(
            health_pb2.HealthCheckRequest(service=''), timeout=10)
        expect(resp.status == SERVING, 'Health/Check: want SERVING, got %s' % resp.status)
        self.c_expect('OK', 'health', contains='health: SERVING')

    def health_unknown_service(self):
        try:
            health_pb2_grpc.HealthStub(self.ch).Check(
                health_pb2.HealthCheckRequest(service='no.such.Service'), timeout=10)
            raise AssertionError('Health/Check of an unknown service answered OK')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.NOT_FOUND,
                   'unknown service: want NOT_FOUND, got %s (%r)' % (e.code(), e.details()))

    def health_check_command(self):
        env = dict(self.server.env)
        env['TRSTCTL_SERVER_ADDR'] = self.server.addr
        rc, out = harness.run_cmd([self.args.trstctl, '--health-check'], env=env)
        expect(rc == 0 and 'SERVING' in out,
               'trstctl --health-check: want exit 0 and SERVING, got %d: %s' % (rc, out))
        env['TRSTCTL_SERVER_ADDR'] = '127.0.0.1:%d' % harness.free_port()
        rc, out = harness.run_cmd([self.args.trstctl, '--health-check'], env=env)
        expect(rc != 0, 'trstctl --health-check of a closed port exited 0: %s' % out)

    def reflect(self, version, requests):
        pb2, pb2_grpc = REFLECTION[version]
        stub = pb2_grpc.ServerReflectionStub(self.ch)
        reqs = [pb2.ServerReflectionRequest(host='', **r) for r in requests]
        return list(stub.ServerReflectionInfo(iter(reqs), timeout=10))

    def reflection_list(self, version):
        resps = self.reflect(version, [{'list_services': ''}])
        expect(len(resps) == 1, 'want 1 response, got %d' % len(resps))
        names = {s.name for s in resps[0].list_services_response.service}
        missing = EXPECTED_SERVICES - names
        expect(not missing, 'list (%s) lacks %s; got %s' % (version, sorted(missing),
                                                            sorted(names)))

    def pool_for_symbol(self, version, symbol):
        """Like grpcurl describe: fetch the file defining symbol, then any missing
        dependency by file name, and build a DescriptorPool. Returns (pool, protos)."""
        resps = self.reflect(version, [{'file_containing_symbol': symbol}])
        r = resps[0]
        expect(r.WhichOneof('message_response') == 'file_descriptor_response',
               'file_containing_symbol %s: got %s' % (symbol, r))
        protos = {}
        for b in r.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(b)
            protos[fdp.name] = fdp
        for _ in range(10):
            missing = {d for f in protos.values() for d in f.dependency} - set(protos)
            if not missing:
                break
            for resp in self.reflect(version, [{'file_by_filename': m} for m in sorted(missing)]):
                expect(resp.WhichOneof('message_response') == 'file_descriptor_response',
                       'file_by_filename: got %s' % resp)
                for b in resp.file_descriptor_response.file_descriptor_proto:
                    fdp = descriptor_pb2.FileDescriptorProto.FromString(b)
                    protos[fdp.name] = fdp
        pool = descriptor_pool.DescriptorPool()
        added = set()
        while len(added) < len(protos):
            progress = False
            for name, fdp in protos.items():
                if name not in added and all(d in added for d in fdp.dependency):
                    pool.Add(fdp)
                    added.add(name)
                    progress = True
            expect(progress, 'unresolvable dependencies among %s' % sorted(protos))
        return pool, protos

    def reflection_describe(self, version):
        pool, protos = self.pool_for_symbol(version, 'trstctl.v1.Audit')
        svc = pool.FindServiceByName('trstctl.v1.Audit')
        kinds = {}
        for fdp in protos.values():
            for s in fdp.service:
                if (fdp.package + '.' + s.name) == 'trstctl.v1.Audit':
                    kinds = {m.name: (m.client_streaming, m.server_streaming) for m in s.method}
        expect(kinds.get('WatchEvents') == (False, True),
               'WatchEvents flags: want server_streaming only, got %r' % (kinds.get('WatchEvents'),))
        expect(kinds.get('ListEvents') == (False, False),
               'ListEvents flags: want unary, got %r' % (kinds.get('ListEvents'),))
        m = svc.FindMethodByName('WatchEvents')
        expect(m.output_type.full_name == 'trstctl.v1.AuditEvent',
               'WatchEvents output: %s' % m.output_type.full_name)
        # An unknown symbol gets an error response, not a broken stream.
        r = self.reflect(version, [{'file_containing_symbol': 'no.such.Symbol'}])[0]
        expect(r.WhichOneof('message_response') == 'error_response' and
               r.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0],
               'unknown symbol: want error_response NOT_FOUND, got %s' % r)

    def dynamic_call(self):
        pool, _ = self.pool_for_symbol('v1', 'trstctl.v1.CA')
        method = pool.FindServiceByName('trstctl.v1.CA').FindMethodByName('CreateOwner')
        if hasattr(message_factory, 'GetMessageClass'):
            in_cls = message_factory.GetMessageClass(method.input_type)
            out_cls = message_factory.GetMessageClass(method.output_type)
        else:
            f = message_factory.MessageFactory(pool)
            in_cls = f.GetPrototype(method.input_type)
            out_cls = f.GetPrototype(method.output_type)
        req = in_cls(kind='user', name='served-test', email='served@test.invalid')
        fn = self.ch.unary_unary('/trstctl.v1.CA/CreateOwner',
                                 request_serializer=in_cls.SerializeToString,
                                 response_deserializer=out_cls.FromString)
        owner = fn(req, timeout=10, metadata=AUTH)
        expect(owner.name == 'served-test' and owner.kind == 'user' and owner.id,
               'CreateOwner by reflection: unexpected reply %s' % owner)
        # The same name again: the CA refuses it, through the dynamic stub too.
        try:
            fn(req, timeout=10, metadata=AUTH)
            raise AssertionError('a second owner with the same name was accepted')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.ALREADY_EXISTS,
                   'duplicate owner: want ALREADY_EXISTS, got %s %r' % (e.code(), e.details()))

    def unknown_method(self):
        for path in ('/trstctl.v1.CA/NoSuchMethod', '/no.such.Service/Method'):
            expect_code(raw_unary(self.ch, path, b''), grpc.StatusCode.UNIMPLEMENTED, path)
            self.c_expect('UNIMPLEMENTED', path)

    def malformed_body(self):
        got = raw_unary(self.ch, '/grpc.health.v1.Health/Check', b'\xff\xff\xff')
        expect_code(got, grpc.StatusCode.INVALID_ARGUMENT, 'Health/Check with ff ff ff')
        self.c_expect('INVALID_ARGUMENT', '/grpc.health.v1.Health/Check', '--raw-hex', 'ffffff')

    def oversized_body(self):
        big = sized_health_request(4096)
        got = raw_unary(self.ch, '/grpc.health.v1.Health/Check', big)
        expect_code(got, grpc.StatusCode.RESOURCE_EXHAUSTED, 'Health/Check with 4 KiB')
        self.c_expect('RESOURCE_EXHAUSTED', '/grpc.health.v1.Health/Check', '--raw-size', '4096')
        # Just under the limit the request is read: an unknown service name -> NOT_FOUND.
        small = sized_health_request(MAX_REQUEST - 24)
        got = raw_unary(self.ch, '/grpc.health.v1.Health/Check', small)
        expect_code(got, grpc.StatusCode.NOT_FOUND, 'Health/Check with %d bytes' % len(small))

    def deadline(self):
        stub = health_pb2_grpc.HealthStub(self.ch)
        seen = []
        t0 = time.monotonic()
        try:
            for resp in stub.Watch(health_pb2.HealthCheckRequest(service=''), timeout=0.3):
                seen.append(resp.status)
            raise AssertionError('Health/Watch ended OK before its deadline')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
                   'Watch with 300 ms deadline: want DEADLINE_EXCEEDED, got %s (%r)'
                   % (e.code(), e.details()))
        took = time.monotonic() - t0
        expect(took < 5, 'the deadline took %.1f s to fire' % took)
        expect(seen[:1] == [SERVING], 'Watch: want a first SERVING message, got %s' % seen)
        self.c_expect('DEADLINE_EXCEEDED', '--deadline-ms', '300', 'watch-health',
                      contains='health: SERVING')
        self.c_expect('OK', '--max-messages', '1', 'watch-health', contains='health: SERVING')

    def typed_c_stubs(self):
        self.c_expect('OK', 'ca-bundle', contains='BEGIN CERTIFICATE')
        # Audit has landed: WatchEvents is a live tail that ends only at its deadline.
        self.c_expect('DEADLINE_EXCEEDED', '--deadline-ms', '800', 'watch-events')

    def tls_refusals(self):
        mode = self.args.mode
        if mode == 'plaintext':
            ch = harness.channel(self.server.addr, 'tls', root_pem=None)
            expect_code(raw_unary(ch, '/grpc.health.v1.Health/Check', b'', timeout=5),
                        grpc.StatusCode.UNAVAILABLE, 'TLS client against plaintext')
            # a TLS client (system roots) against a plaintext server: no handshake
            self.c_expect('UNAVAILABLE', 'health', transport=[])
            return
        ch = harness.channel(self.server.addr, 'plaintext')
        expect_code(raw_unary(ch, '/grpc.health.v1.Health/Check', b'', timeout=5),
                    grpc.StatusCode.UNAVAILABLE, 'plaintext client against TLS')
        self.c_expect('UNAVAILABLE', 'health', transport=['--plaintext'])
        if mode == 'tls':
            # Without the CA bundle: the built-in CA is not among the system roots.
            self.c_expect('UNAVAILABLE', 'health', transport=[])
            bundle = os.path.join(self.server.env['TRSTCTL_STATE_DIR'], 'ca-bundle.pem')
            self.c_expect('OK', 'health', transport=['--tls-ca', bundle])
            return
        # mtls: no client certificate, or one from another CA -> refused.
        pki = self.args.pki
        ch = self.channel(key=None, cert=None)
        expect_code(raw_unary(ch, '/grpc.health.v1.Health/Check', b'', timeout=5),
                    grpc.StatusCode.UNAVAILABLE, 'mTLS without a client certificate')
        ch = self.channel(key=harness.read(pki['other-client.key']),
                          cert=harness.read(pki['other-client.pem']))
        expect_code(raw_unary(ch, '/grpc.health.v1.Health/Check', b'', timeout=5),
                    grpc.StatusCode.UNAVAILABLE, 'mTLS with a certificate of another CA')
        self.c_expect('UNAVAILABLE', 'health',
                      transport=['--tls-ca', pki['ca.pem'], '--server-name', 'localhost'])
        self.c_expect('OK', 'health', contains='health: SERVING',
                      transport=['--tls-ca', pki['ca.pem'], '--server-name', 'localhost',
                                 '--cert', pki['client.pem'], '--key', pki['client.key']])

    def internal_cert_names(self):
        pem = harness.served_cert('127.0.0.1', self.server.port, self.server.internal_ca_pem(),
                                  'localhost')
        r = subprocess.run(['openssl', 'x509', '-noout', '-ext', 'subjectAltName'],
                           input=pem, capture_output=True)
        out = r.stdout.decode()
        for name in ('DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1'):
            expect(name in out, 'internal certificate lacks %s: %s' % (name, out.strip()))

    def sigterm_drains(self):
        stub = health_pb2_grpc.HealthStub(self.ch)
        first = threading.Event()
        result = {}

        def watch():
            try:
                for resp in stub.Watch(health_pb2.HealthCheckRequest(service=''), timeout=60):
                    result.setdefault('first', resp.status)
                    first.set()
                result['code'] = grpc.StatusCode.OK
            except grpc.RpcError as e:
                result['code'] = e.code()
            first.set()

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        cmd = [self.args.call, '--addr', self.server.addr] + self.c_args + ['watch-health']
        cproc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        line = cproc.stdout.readline()
        expect(first.wait(10) and result.get('first') == SERVING,
               'Watch did not start: %s' % result)
        expect('health: SERVING' in line, 'C watch did not start: %r' % line)
        t0 = time.monotonic()
        self.server.signal(signal.SIGTERM)
        rc = self.server.wait(GRACE_S + 8)
        took = time.monotonic() - t0
        expect(rc is not None, 'trstctl did not exit %.0f s after SIGTERM' % (GRACE_S + 8))
        print('  server exited %d after %.2f s (grace %.1f s)' % (rc, took, GRACE_S))
        expect(rc == 0, 'trstctl exited %d after SIGTERM (want 0)' % rc)
        t.join(10)
        expect(not t.is_alive(), 'the grpcio Watch stream did not end after shutdown')
        print('  grpcio Watch ended with %s' % result.get('code'))
        try:
            rest, _ = cproc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            cproc.kill()
            raise AssertionError('the C watch did not end after shutdown')
        print('  C watch ended: %s' % rest.strip().replace('\n', ' | '))

    def no_capabilities(self):
        """Started as root with air-gap off, the server keeps no capability (it kept all)."""
        if os.geteuid() != 0:
            print('  not root: nothing to drop')
            return
        pid = self.server.proc.pid
        for tid in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/status' % (pid, tid)) as f:
                caps = dict(l.split(':\t') for l in f.read().splitlines()
                            if l.startswith('Cap'))
            for k in ('CapEff', 'CapPrm', 'CapBnd'):
                expect(int(caps[k], 16) == 0, 'thread %s %s %s, want none' % (tid, k, caps[k]))

    def log_hygiene(self):
        log = self.server.log()
        bad = []
        for line in log.splitlines():
            if not line.strip():
                continue
            try:
                import json
                json.loads(line)
            except ValueError:
                bad.append(line)
        expect(not bad, 'stderr lines that are not JSON: %s' % bad[:5])
        expect(TOKEN not in log, 'the bearer token appears in the server log')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--mode', choices=['plaintext', 'tls', 'mtls'], required=True)
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--call', required=True)
    args = ap.parse_args()
    if not os.access(args.call, os.X_OK):
        harness.skip('trstctl-call not found: %s' % args.call)

    tmp = tempfile.mkdtemp(prefix='trstctl-served-pki-')
    env = {'TRSTCTL_SERVER_MAX_REQUEST_BYTES': str(MAX_REQUEST),
           'TRSTCTL_SERVER_SHUTDOWN_GRACE': '%ds' % GRACE_S}
    if args.mode == 'plaintext':
        env.update({'TRSTCTL_SERVER_TLS_MODE': 'disabled', 'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true'})
    elif args.mode == 'tls':
        env['TRSTCTL_SERVER_TLS_MODE'] = 'internal'
    else:
        args.pki = harness.make_pki(tmp)
        env.update({'TRSTCTL_SERVER_TLS_MODE': 'file',
                    'TRSTCTL_SERVER_TLS_CERT_FILE': args.pki['server.pem'],
                    'TRSTCTL_SERVER_TLS_KEY_FILE': args.pki['server.key'],
                    'TRSTCTL_SERVER_TLS_CLIENT_CA_FILE': args.pki['ca.pem']})
    try:
        server = harness.Server(args.trstctl, env=env)
        try:
            server.start()
        except harness.ServerError as e:
            print('FAIL start: %s\nserver stderr:\n%s' % (e, server.log()))
            server.stop()
            return 1
        with server:
            global TOKEN, AUTH
            TOKEN = server.bootstrap_token()
            AUTH = [('authorization', 'Bearer ' + TOKEN)]
            print('server up at %s (mode %s)' % (server.addr, args.mode))
            if args.mode == 'plaintext':
                creds, c_args = {'mode': 'plaintext'}, ['--plaintext']
            elif args.mode == 'tls':
                pem = server.internal_ca_pem()
                pinned = os.path.join(tmp, 'ca-bundle.pem')
                with open(pinned, 'wb') as f:
                    f.write(pem)
                creds = {'mode': 'tls', 'root_pem': pem}
                c_args = ['--tls-ca', pinned, '--server-name', 'localhost']
            else:
                p = args.pki
                creds = {'mode': 'tls', 'root_pem': harness.read(p['ca.pem']),
                         'key': harness.read(p['client.key']),
                         'cert': harness.read(p['client.pem'])}
                c_args = ['--tls-ca', p['ca.pem'], '--server-name', 'localhost',
                          '--cert', p['client.pem'], '--key', p['client.key']]
            s = Suite(args, server, creds, c_args)
            checks = harness.Checks('served ' + args.mode, server)
            checks.run('Health/Check is SERVING (grpcio and C typed stub)', s.health_serving)
            checks.run('Health/Check of an unknown service is NOT_FOUND', s.health_unknown_service)
            checks.run('trstctl --health-check exits 0, and non-zero on a closed port',
                       s.health_check_command)
            for v in ('v1', 'v1alpha'):
                checks.run('reflection %s list shows the 5 services + health + reflection' % v,
                           s.reflection_list, v)
                checks.run('reflection %s describe trstctl.v1.Audit: WatchEvents streams' % v,
                           s.reflection_describe, v)
            checks.run('call by reflection (dynamic message): CreateOwner, then ALREADY_EXISTS',
                       s.dynamic_call)
            checks.run('air-gap off, started as root: no capability kept', s.no_capabilities)
            checks.run('unknown method -> UNIMPLEMENTED', s.unknown_method)
            checks.run('malformed body -> INVALID_ARGUMENT', s.malformed_body)
            checks.run('4 KiB body over a 1 KiB limit -> RESOURCE_EXHAUSTED', s.oversized_body)
            checks.run('Health/Watch with a 300 ms deadline -> DEADLINE_EXCEEDED', s.deadline)
            checks.run('C typed stubs reach trstctl methods (GetCABundle, WatchEvents)',
                       s.typed_c_stubs)
            checks.run('transport mismatches are refused', s.tls_refusals)
            if args.mode == 'tls':
                checks.run('internal certificate names localhost, 127.0.0.1, ::1',
                           s.internal_cert_names)
            checks.run('SIGTERM with Watch streams open: exit 0 within the grace',
                       s.sigterm_drains)
            checks.run('server log: JSON lines, no bearer token', s.log_hygiene)
            return checks.finish()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
