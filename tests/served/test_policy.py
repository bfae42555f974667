#!/usr/bin/python3
"""Served test of authentication and policy (issue 8) against the real `trstctl serve`
with a real PostgreSQL (scripts/lib/services.sh, in a temp folder).

It walks EVERY method of the trstctl.v1 services the server itself describes through
reflection (so a method added later is walked too): without a token the answer must be
UNAUTHENTICATED, with a token bound to no policy PERMISSION_DENIED, and with the bootstrap
admin token neither. Health and reflection need no token. The bootstrap token file is
0600 and its value never appears in the log. A token revoked on one server is refused by
a second server sharing the database within a second.

usage: test_policy.py --trstctl PATH [--source-root DIR]
"""

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import harness
from harness import expect

harness.need_grpc()

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402

import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import policy_pb2  # noqa: E402
import reflection_pb2  # noqa: E402
import reflection_pb2_grpc  # noqa: E402

UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
HERE = os.path.dirname(os.path.abspath(__file__))


def start_pg(root, folder):
    """Starts PostgreSQL in folder; returns its DSN (skips when it cannot start)."""
    script = '. "%s/scripts/lib/services.sh" && svc_pg_start "%s" >&2 && ' \
             'echo "$TRSTCTL_POSTGRES_DSN"' % (root, folder)
    r = subprocess.run(['bash', '-c', script], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not r.stdout.strip():
        harness.skip('PostgreSQL cannot start here: %s' % r.stderr.strip()[-400:])
    return r.stdout.strip().splitlines()[-1]


def stop_pg(root, folder):
    subprocess.run(['bash', '-c', '. "%s/scripts/lib/services.sh" && svc_pg_destroy "%s"'
                    % (root, folder)], capture_output=True, timeout=120)


def call(ch, path, streaming, token, timeout=5):
    """Calls path with an empty request; returns the status code."""
    md = [('authorization', 'Bearer ' + token)] if token else None
    try:
        if streaming:
            for _ in ch.unary_stream(path)(b'', timeout=timeout, metadata=md):
                break
            return grpc.StatusCode.OK
        ch.unary_unary(path)(b'', timeout=timeout, metadata=md)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def served_methods(ch):
    """(path, server_streaming) of every method of trstctl.v1.* as reflection describes."""
    stub = reflection_pb2_grpc.ServerReflectionStub(ch)

    def ask(**kw):
        return list(stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(host='', **kw)]), timeout=10))

    names = [s.name for s in ask(list_services='')[0].list_services_response.service]
    services = [n for n in names if n.startswith('trstctl.v1.')]
    expect(len(services) >= 5, 'reflection lists %r' % names)
    methods = []
    for svc in services:
        r = ask(file_containing_symbol=svc)[0]
        for b in r.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(b)
            for s in fdp.service:
                if '%s.%s' % (fdp.package, s.name) != svc:
                    continue
                for m in s.method:
                    methods.append(('/%s/%s' % (svc, m.name), m.server_streaming))
    return methods


class PolicyTest:
    def __init__(self, exe, root):
        self.exe = exe
        self.root = root
        self.tmp = tempfile.mkdtemp(prefix='trstctl-policy-served-')
        self.dsn = start_pg(root, os.path.join(self.tmp, 'pg'))
        self.kek = os.path.join(self.tmp, 'kek', 'kek.bin')
        self.servers = []

    def server(self, **extra_env):
        env = {'TRSTCTL_POSTGRES_DSN': self.dsn,
               'TRSTCTL_SECRETS_KEK_FILE': self.kek,
               'TRSTCTL_KEK_GENERATE': 'true',
               'TRSTCTL_SERVER_TLS_MODE': 'disabled',
               'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true'}
        env.update(extra_env)
        s = harness.Server(self.exe, env, start_timeout=60).start()
        self.servers.append(s)
        return s

    def close(self):
        for s in self.servers:
            s.stop()
            shutil.rmtree(s.state_dir, ignore_errors=True)
        stop_pg(self.root, os.path.join(self.tmp, 'pg'))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def bootstrap_token(self, s):
        path = os.path.join(s.env['TRSTCTL_STATE_DIR'], 'bootstrap-token')
        deadline = time.monotonic() + 5
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.1)
        expect(os.path.exists(path),
               'no bootstrap token file at %s: is authz wired into `trstctl serve` '
               '(authz_open, authz_install, policy_rpc_register)?' % path)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        expect(mode == 0o600, 'bootstrap token file mode %o, want 600' % mode)
        with open(path) as f:
            token = f.read().strip()
        expect(token.startswith('trst_') and len(token) == 48, 'bad token file content')
        expect(path in s.log(), 'the log does not say where the bootstrap token is')
        expect(token not in s.log(), 'the bootstrap token appears in the log')
        return token

    def create_token(self, ch, admin, policies=()):
        req = policy_pb2.CreateTokenRequest(name='served', policies=list(policies))
        resp = ch.unary_unary('/trstctl.v1.Policy/CreateToken',
                              request_serializer=policy_pb2.CreateTokenRequest.SerializeToString,
                              response_deserializer=policy_pb2.CreateTokenResponse.FromString)(
            req, timeout=10, metadata=[('authorization', 'Bearer ' + admin)])
        return resp.token, resp.token_id

    def run(self):
        checks = harness.Checks('policy')
        a = self.server()
        checks.server = a
        ch = grpc.insecure_channel(a.addr)
        state = {}

        def bootstrap():
            state['admin'] = self.bootstrap_token(a)

        def health_and_reflection_open():
            h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            expect(h.status == health_pb2.HealthCheckResponse.SERVING, 'health: %s' % h)
            state['methods'] = served_methods(ch)

        def every_method_gated():
            admin = state['admin']
            none, _ = self.create_token(ch, admin)
            bad = []
            for path, streaming in state['methods']:
                c0 = call(ch, path, streaming, None)
                c1 = call(ch, path, streaming, none)
                c2 = call(ch, path, streaming, admin, timeout=2)
                if c0 != UNAUTH:
                    bad.append('%s without a token: %s' % (path, c0.name))
                if c1 != DENIED:
                    bad.append('%s with no policy: %s (a method without a policy action?)'
                               % (path, c1.name))
                if c2 in (UNAUTH, DENIED):
                    bad.append('%s refused to admin: %s' % (path, c2.name))
            expect(len(state['methods']) >= 34, 'only %d methods walked' % len(state['methods']))
            expect(not bad, '\n  '.join(bad))
            print('  %d methods walked' % len(state['methods']))

        def malformed_tokens():
            for tok in ('garbage', 'trst_' + 'A' * 43, state['admin'] + 'x'):
                c = call(ch, '/trstctl.v1.Policy/ListPolicies', False, tok)
                expect(c == UNAUTH, 'token %r...: %s' % (tok[:8], c.name))

        def cli():
            env = dict(a.env)
            tokf = os.path.join(a.env['TRSTCTL_STATE_DIR'], 'bootstrap-token')
            base = [self.exe, 'policy']
            opts = ['--addr', a.addr, '--plaintext', '--token-file', tokf]
            doc = os.path.join(self.tmp, 'ops.json')
            with open(doc, 'w') as f:
                f.write('{"rules": [{"effect": "allow", "actions": ["Secrets.*"], '
                        '"resources": ["secret/ops/**"]}]}')
            rc, out = harness.run_cmd(base + ['put', 'ops', doc] + opts, env=env)
            expect(rc == 0 and 'ops' in out and 'version 1' in out, 'put: %d %s' % (rc, out))
            rc, out = harness.run_cmd(base + ['list'] + opts, env=env)
            expect(rc == 0 and 'admin' in out and 'ops' in out, 'list: %d %s' % (rc, out))
            rc, out = harness.run_cmd(base + ['get', 'ops'] + opts, env=env)
            expect(rc == 0 and 'secret/ops/**' in out, 'get: %d %s' % (rc, out))
            with open(doc, 'w') as f:
                f.write('{"rules": [{"effect": "allow", "actions": ["Secrets.Nope"], '
                        '"resources": ["*"]}]}')
            rc, out = harness.run_cmd(base + ['put', 'ops', doc] + opts, env=env)
            expect(rc == 1 and 'INVALID_ARGUMENT' in out and 'Secrets.Nope' in out,
                   'bad put: %d %s' % (rc, out))
            rc, out = harness.run_cmd(base + ['eval', 'Secrets.GetSecret', 'secret/ops/db/pw']
                                      + opts, env=env)
            expect(rc == 0 and out.startswith('allow\tpolicy admin'), 'eval: %d %s' % (rc, out))
            rc, out = harness.run_cmd(base + ['delete', 'ops'] + opts, env=env)
            expect(rc == 0, 'delete: %d %s' % (rc, out))
            rc, out = harness.run_cmd(base + ['get', 'ops'] + opts, env=env)
            expect(rc == 1 and 'NOT_FOUND' in out, 'get deleted: %d %s' % (rc, out))
            rc, out = harness.run_cmd(base + ['list', '--addr', a.addr, '--plaintext',
                                              '--token-file', '/nonexistent'], env=env)
            expect(rc == 1, 'missing token file: %d %s' % (rc, out))

        def revocation_on_second_server():
            b = self.server()
            admin = state['admin']
            ch_b = grpc.insecure_channel(b.addr)
            tok, tok_id = self.create_token(ch, admin, ['admin'])
            path = '/trstctl.v1.Policy/ListPolicies'
            deadline = time.monotonic() + 2
            while call(ch_b, path, False, tok) != grpc.StatusCode.OK:
                expect(time.monotonic() < deadline, 'new token not accepted by server B')
                time.sleep(0.05)
            ch.unary_unary('/trstctl.v1.Policy/RevokeToken',
                           request_serializer=policy_pb2.RevokeTokenRequest.SerializeToString,
                           response_deserializer=policy_pb2.Token.FromString)(
                policy_pb2.RevokeTokenRequest(id=tok_id), timeout=10,
                metadata=[('authorization', 'Bearer ' + admin)])
            start = time.monotonic()
            while call(ch_b, path, False, tok) != UNAUTH:
                expect(time.monotonic() - start < 1.0,
                       'server B still accepts a token revoked on server A after 1 s')
                time.sleep(0.02)
            print('  revocation seen by server B after %.0f ms'
                  % ((time.monotonic() - start) * 1000))
            expect(not os.path.exists(os.path.join(b.env['TRSTCTL_STATE_DIR'],
                                                   'bootstrap-token')),
                   'the second server bootstrapped a second admin token')
            ch_b.close()

        if checks.run('bootstrap token', bootstrap):
            checks.run('health and reflection without a token', health_and_reflection_open)
            if 'methods' in state:
                checks.run('every served method gated', every_method_gated)
            checks.run('malformed tokens', malformed_tokens)
            checks.run('trstctl policy put|get|list|eval|delete', cli)
            checks.run('revocation on a second server', revocation_on_second_server)
        ch.close()
        return checks.finish()


def main(test_class=PolicyTest):
    """Runs test_class (PolicyTest or a subclass: its own PostgreSQL and servers)."""
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--source-root', default=os.path.dirname(os.path.dirname(HERE)))
    args = ap.parse_args()
    if not os.access(args.trstctl, os.X_OK):
        harness.skip('trstctl binary not found: %r' % args.trstctl)
    t = test_class(args.trstctl, args.source_root)
    try:
        return t.run()
    finally:
        t.close()


if __name__ == '__main__':
    sys.exit(main())
