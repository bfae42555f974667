#!/usr/bin/python3
"""The generated Go client (clients/go) against a served trstctl in the internal TLS
mode: runs trstctl-go-check, which pins the server's internal certificate, sends the
bootstrap token, and checks Health/Check, CA GetCABundle, CA CreateOwner + GetOwner,
Audit VerifyChain and a call without a token (UNAUTHENTICATED). Also checks that the
program refuses a wrong token file and an untrusted certificate (it must not pass
against a server it cannot verify). Exits 77 when the Go program was not built.

  test_go_client.py --trstctl PATH --go-check PATH
"""

import argparse
import os
import subprocess
import sys
import tempfile

import harness
from harness import expect


def run(argv, timeout=120):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--go-check', required=True)
    args = ap.parse_args()
    if not args.go_check or not os.access(args.go_check, os.X_OK):
        harness.skip('the Go client check program was not built: %r (needs golang-go, '
                     'protoc-gen-go-grpc, golang-google-grpc-dev)' % args.go_check)

    with tempfile.TemporaryDirectory(prefix='trstctl-go-') as tmp, \
            harness.Server(args.trstctl, env={'TRSTCTL_SERVER_TLS_MODE': 'internal'}) as server:
        token = server.bootstrap_token()
        token_file = os.path.join(tmp, 'token')
        with open(token_file, 'w') as f:
            f.write(token + '\n')
        pinned = os.path.join(tmp, 'pinned.pem')
        with open(pinned, 'wb') as f:
            f.write(server.internal_ca_pem())
        print('server up at %s (internal TLS)' % server.addr, flush=True)
        base = [args.go_check, '-addr', server.addr, '-ca', pinned, '-server-name', 'localhost']
        checks = harness.Checks('go-client', server)

        def full():
            rc, out = run(base + ['-token-file', token_file, '-owner', 'go-client-owner'])
            print(out.rstrip(), flush=True)
            expect(rc == 0, 'trstctl-go-check exited %d' % rc)
            for name in ('Health/Check', 'CA/GetCABundle', 'CA/CreateOwner', 'CA/GetOwner',
                         'Audit/VerifyChain', 'CA/ListOwners without a token'):
                expect(('ok   %s:' % name) in out, 'no passing line for %s' % name)
            expect('6 passed, 0 failed' in out,
                   'summary line missing or wrong')

        def wrong_token():
            bad = os.path.join(tmp, 'bad-token')
            with open(bad, 'w') as f:
                f.write('trst_' + 'x' * 40 + '\n')
            rc, out = run(base + ['-token-file', bad, '-owner', 'go-client-bad'])
            print(out.rstrip(), flush=True)
            expect(rc == 1, 'a wrong token: want exit 1, got %d' % rc)
            expect('FAIL CA/CreateOwner' in out and 'Unauthenticated' in out,
                   'a wrong token: CreateOwner should fail with Unauthenticated')
            expect('ok   Health/Check:' in out, 'health needs no token')

        def untrusted_cert():
            other = os.path.join(tmp, 'other')
            os.makedirs(other)
            pki = harness.make_pki(other)
            rc, out = run([args.go_check, '-addr', server.addr, '-ca', pki['ca.pem'],
                           '-token-file', token_file, '-timeout', '3s'])
            print(out.rstrip(), flush=True)
            expect(rc != 0, 'an untrusted certificate: the check passed (exit 0)')
            expect('ok   ' not in out, 'an untrusted certificate: a call succeeded')

        def bad_args():
            rc, out = run([args.go_check, '-addr', server.addr])
            expect(rc == 2 and 'usage' in out, 'missing flags: want usage, exit 2; got %d %s'
                   % (rc, out.strip()))

        checks.run('generated Go client: health, CA, audit, no token', full)
        checks.run('wrong token -> UNAUTHENTICATED, exit 1', wrong_token)
        checks.run('untrusted certificate -> no call succeeds', untrusted_cert)
        checks.run('missing flags -> usage, exit 2', bad_args)
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
