#!/usr/bin/python3
"""The trstctl Python package as a user installs it: the wheel the build made
(clients/python, build-wheel.py) installed with pip into a fresh virtual environment
(`/usr/bin/python3 -m venv --system-site-packages`, so grpcio and protobuf come from
Debian; `pip install --no-index`: nothing downloaded), then python_client_check.py run by
that environment's python, never with the build tree's stubs on the path:

- internal TLS, the server's certificate as ca_file, the bootstrap token: Health, CA
  CreateOwner / CreateIdentity / IssueCertificate (the certificate verified here with
  openssl against the CA bundle, its key matched), a secret created, read, rotated and
  read again, and UNAUTHENTICATED without a token;
- another CA file: every call UNAVAILABLE;
- a server with TLS disabled (loopback): the same calls with plaintext=True;
- connect() refusals (plaintext to a non-loopback address, ...).

Exits 77 when the wheel was not built (python3-setuptools, python3-wheel or python3-pip
missing) or venv cannot be made (python3-venv missing).

  test_python_client.py --trstctl PATH --wheel PATH
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import harness
from harness import expect

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, 'python_client_check.py')


def clean_env():
    """No PYTHONPATH (the build tree's flat stubs), no user site, no pip network."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('PYTHON', 'PIP_', 'VIRTUAL_ENV'))}
    env.update({'PYTHONNOUSERSITE': '1', 'PYTHONDONTWRITEBYTECODE': '1',
                'PIP_NO_INDEX': '1', 'PIP_DISABLE_PIP_VERSION_CHECK': '1'})
    return env


def run(argv, timeout=120):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=clean_env(), cwd='/')
    return r.returncode, r.stdout + r.stderr


def show(argv, rc, out):
    print('  $ %s -> exit %d' % (' '.join(argv), rc), flush=True)
    if out.strip():
        print('    ' + out.strip().replace('\n', '\n    '), flush=True)


def make_venv(tmp, wheel):
    venv = os.path.join(tmp, 'venv')
    argv = ['/usr/bin/python3', '-m', 'venv', '--system-site-packages', venv]
    rc, out = run(argv)
    show(argv, rc, out)
    if rc != 0 and 'ensurepip' in out:
        harness.skip('cannot make a virtual environment: python3-venv is missing')
    expect(rc == 0, 'venv failed')
    py = os.path.join(venv, 'bin', 'python')
    argv = [py, '-m', 'pip', 'install', '--no-index', '--no-cache-dir', wheel]
    rc, out = run(argv)
    show(argv, rc, out)
    expect(rc == 0, 'pip install of the wheel failed')
    rc, out = run([py, '-m', 'pip', 'show', 'trstctl'])
    expect(rc == 0 and 'Requires: grpcio, protobuf' in out,
           'pip show trstctl: the declared dependencies are not grpcio and protobuf:\n' + out)
    return venv, py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--wheel', default='')
    args = ap.parse_args()
    if not args.wheel or not os.path.isfile(args.wheel):
        harness.skip('the trstctl wheel was not built (%r): needs python3-setuptools, '
                     'python3-wheel and python3-pip' % args.wheel)

    with tempfile.TemporaryDirectory(prefix='trstctl-py-') as tmp:
        checks = harness.Checks('python-client')
        env = {}

        def install():
            env['venv'], env['py'] = make_venv(tmp, args.wheel)

        if not checks.run('the wheel installs into a fresh venv (no index)', install):
            return checks.finish()
        py, venv = env['py'], env['venv']

        def refusals():
            token = os.path.join(tmp, 'some-token')
            with open(token, 'w') as f:
                f.write('trst_' + 'y' * 40 + '\n')
            argv = [py, CHECK, 'refusals', '--token-file', token]
            rc, out = run(argv)
            show(argv, rc, out)
            expect(rc == 0, 'connect() refusals failed')

        checks.run('connect() refuses what it must, before any call', refusals)

        def full(server, name, transport):
            token_file, _ = server.client_files(os.path.join(tmp, name))
            result = os.path.join(tmp, name + '.json')
            argv = [py, CHECK, 'full', '--addr', server.addr, '--token-file', token_file,
                    '--name', name, '--out', result] + transport
            rc, out = run(argv)
            show(argv, rc, out)
            expect(rc == 0, 'the client calls failed')
            with open(result) as f:
                res = json.load(f)
            for key in ('trstctl', 'v1', 'health'):
                expect(res[key].startswith(venv + os.sep),
                       '%s was loaded from %s, not from the venv' % (key, res[key]))
            expect(not res['grpc'].startswith(venv + os.sep), 'grpc came from the venv')
            verify_issued(res, os.path.join(tmp, name))
            return token_file

        def verify_issued(res, prefix):
            files = {}
            for key in ('cert_pem', 'chain_pem', 'key_pem', 'bundle'):
                files[key] = prefix + '.' + key
                with open(files[key], 'w') as f:
                    f.write(res[key])
            rc, out = harness.run_cmd(['openssl', 'verify', '-CAfile', files['bundle'],
                                       '-untrusted', files['chain_pem'], files['cert_pem']])
            expect(rc == 0 and ': OK' in out, 'openssl verify: %s' % out.strip())
            rc, out = harness.run_cmd(['openssl', 'x509', '-noout', '-ext', 'subjectAltName',
                                       '-in', files['cert_pem']])
            expect('DNS:' + res['dns'] in out, 'no DNS:%s in %s' % (res['dns'], out.strip()))
            rc1, cert_pub = harness.run_cmd(['openssl', 'x509', '-noout', '-pubkey', '-in',
                                             files['cert_pem']])
            rc2, key_pub = harness.run_cmd(['openssl', 'pkey', '-pubout', '-in',
                                            files['key_pem']])
            expect(rc1 == 0 and rc2 == 0 and cert_pub == key_pub,
                   'the private key does not match the certificate')
            print('  issued certificate %s verifies against the CA bundle' % res['serial'])

        with harness.Server(args.trstctl,
                            env={'TRSTCTL_SERVER_TLS_MODE': 'internal'}) as server:
            checks.server = server
            _, pinned = server.client_files(os.path.join(tmp, 'tls-server'))
            print('server up at %s (internal TLS)' % server.addr, flush=True)
            token_file = []

            def tls():
                token_file.append(full(server, 'py-tls', ['--ca-file', pinned]))

            def untrusted():
                other = os.path.join(tmp, 'other')
                os.makedirs(other)
                pki = harness.make_pki(other)
                argv = [py, CHECK, 'untrusted', '--addr', server.addr, '--token-file',
                        token_file[0] if token_file else pinned, '--ca-file', pki['ca.pem']]
                rc, out = run(argv)
                show(argv, rc, out)
                expect(rc == 0, 'a call succeeded against a server it cannot verify')

            checks.run('TLS: health, issuance, secrets, no token', tls)
            checks.run('another CA file: every call UNAVAILABLE', untrusted)

        with harness.Server(args.trstctl, env={
                'TRSTCTL_SERVER_TLS_MODE': 'disabled',
                'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true'}) as server:
            checks.server = server
            print('server up at %s (plaintext, loopback)' % server.addr, flush=True)
            checks.run('plaintext on loopback: health, issuance, secrets, no token',
                       lambda: full(server, 'py-plain', ['--plaintext']))
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
