#!/usr/bin/python3
"""The Go client module (clients/go) as a program outside the tree uses it, against a
served trstctl in the internal TLS mode.

Copies clients/go/example (a module that requires trstctl.dev/trstctl/clients/go) into a
temporary folder, points its replace directive at clients/go, vendors its dependencies
from Debian's Go sources (clients/go/debian-vendor) and builds it with GOPROXY=off and
GOFLAGS=-mod=vendor: no network. Then runs it with the bootstrap token and the server's
certificate as the CA file: Health/Check, CA GetCABundle, CreateOwner + GetOwner,
CreateIdentity + IssueCertificate (checked against the bundle), Audit VerifyChain, and a
connection without a token (UNAUTHENTICATED). Also: a wrong token, an untrusted
certificate (no call may succeed), plaintext to a non-loopback address (refused before
any call) and missing flags. Exits 77 when go or Debian's Go gRPC sources are missing.

  test_go_client.py --trstctl PATH --go GO --source-root DIR --gocode DIR --cache DIR
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import harness
from harness import expect

MODULE = 'trstctl.dev/trstctl/clients/go'
CHECKS = ('Health/Check', 'CA/GetCABundle', 'CA/CreateOwner', 'CA/GetOwner',
          'CA/CreateIdentity', 'CA/IssueCertificate', 'Audit/VerifyChain',
          'CA/ListOwners without a token')


def go_env(cache):
    """go without the caller's GO* settings and without the network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('GO')}
    env.update({'GOPROXY': 'off', 'GOFLAGS': '-mod=vendor', 'GOCACHE': cache,
                'GOENV': 'off', 'CGO_ENABLED': '0'})
    return env


def run(argv, timeout=120, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    return r.returncode, r.stdout + r.stderr


def build_offline(args, src, dest, binary):
    """The module in src (which requires the client module) copied to dest, its replace
    pointed at clients/go, vendored from Debian's Go sources and built offline into
    dest/binary; returns that path. args: go, gocode, cache, source_root."""
    client = os.path.join(args.source_root, 'clients', 'go')
    shutil.copytree(src, dest)
    env = go_env(args.cache)
    for argv in ([args.go, 'mod', 'edit', '-replace', MODULE + '=' + client],
                 [os.path.join(client, 'debian-vendor'), '--go', args.go,
                  '--gocode', args.gocode, '.'],
                 [args.go, 'build', '-trimpath', '-o', binary, '.']):
        rc, out = run(argv, timeout=600, cwd=dest, env=env)
        print('  $ %s -> exit %d%s' % (' '.join(os.path.basename(a) if i == 0 else a
                                                 for i, a in enumerate(argv)), rc,
                                       (': ' + out.strip()) if out.strip() else ''),
              flush=True)
        expect(rc == 0, 'building %s failed' % os.path.basename(src))
    with open(os.path.join(dest, 'go.mod')) as f:
        gomod = f.read()
    expect('require' in gomod and MODULE in gomod and ('=> ' + client) in gomod,
           'the consumer go.mod does not require and replace the client module:\n' + gomod)
    return os.path.join(dest, binary)


def build_consumer(args, tmp):
    """The example module copied out of the tree, vendored and built; returns its path."""
    return build_offline(args, os.path.join(args.source_root, 'clients', 'go', 'example'),
                         os.path.join(tmp, 'consumer'), 'trstctl-example')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--go', default='')
    ap.add_argument('--source-root', required=True)
    ap.add_argument('--gocode', default='/usr/share/gocode')
    ap.add_argument('--cache', required=True)
    args = ap.parse_args()
    if not args.go or not os.access(args.go, os.X_OK):
        harness.skip('go is not installed (Debian: golang-go)')
    for pkg in ('google.golang.org/grpc/health/grpc_health_v1',
                'google.golang.org/protobuf/proto'):
        if not os.path.isdir(os.path.join(args.gocode, 'src', pkg)):
            harness.skip('%s is missing in %s (Debian: golang-google-grpc-dev, '
                         'golang-google-protobuf-dev)' % (pkg, args.gocode))

    with tempfile.TemporaryDirectory(prefix='trstctl-go-') as tmp:
        checks = harness.Checks('go-client')
        exe = []

        def build():
            exe.append(build_consumer(args, tmp))

        if not checks.run('consumer module builds offline against clients/go', build):
            return checks.finish()

        with harness.Server(args.trstctl,
                            env={'TRSTCTL_SERVER_TLS_MODE': 'internal'}) as server:
            checks.server = server
            token_file, pinned = server.client_files(tmp)
            print('server up at %s (internal TLS)' % server.addr, flush=True)
            base = [exe[0], '-addr', server.addr, '-ca', pinned]

            def full():
                rc, out = run(base + ['-token-file', token_file, '-name', 'go-consumer'])
                print(out.rstrip(), flush=True)
                expect(rc == 0, 'trstctl-example exited %d' % rc)
                for name in CHECKS:
                    expect(('ok   %s:' % name) in out, 'no passing line for %s' % name)
                expect('%d passed, 0 failed' % len(CHECKS) in out, 'summary line wrong')

            def wrong_token():
                bad = os.path.join(tmp, 'bad-token')
                with open(bad, 'w') as f:
                    f.write('trst_' + 'x' * 40 + '\n')
                rc, out = run(base + ['-token-file', bad, '-name', 'go-bad'])
                print(out.rstrip(), flush=True)
                expect(rc == 1, 'a wrong token: want exit 1, got %d' % rc)
                expect('FAIL CA/CreateOwner' in out and 'Unauthenticated' in out,
                       'a wrong token: CreateOwner should fail with Unauthenticated')
                expect('ok   Health/Check:' in out, 'health needs no token')

            def untrusted_cert():
                other = os.path.join(tmp, 'other')
                os.makedirs(other)
                pki = harness.make_pki(other)
                rc, out = run([exe[0], '-addr', server.addr, '-ca', pki['ca.pem'],
                               '-token-file', token_file, '-timeout', '3s'])
                print(out.rstrip(), flush=True)
                expect(rc == 1, 'an untrusted certificate: want exit 1, got %d' % rc)
                expect('ok   ' not in out, 'an untrusted certificate: a call succeeded')

            def plaintext_remote():
                rc, out = run([exe[0], '-addr', '192.0.2.1:8443', '-plaintext',
                               '-token-file', token_file])
                expect(rc == 2 and 'plaintext only to a loopback address' in out,
                       'plaintext to 192.0.2.1: want a refusal before any call, exit 2; '
                       'got %d %s' % (rc, out.strip()))

            def bad_args():
                rc, out = run([exe[0], '-addr', server.addr])
                expect(rc == 2 and 'usage' in out,
                       'missing flags: want usage, exit 2; got %d %s' % (rc, out.strip()))

            checks.run('consumer: health, CA issuance, audit, no token', full)
            checks.run('wrong token -> UNAUTHENTICATED, exit 1', wrong_token)
            checks.run('untrusted certificate -> no call succeeds', untrusted_cert)
            checks.run('plaintext to a non-loopback address -> refused', plaintext_remote)
            checks.run('missing flags -> usage, exit 2', bad_args)
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
