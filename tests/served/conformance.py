#!/usr/bin/python3
"""One conformance script through every client: the same sequence of calls, made by the
command line (`trstctl ... -o json`), the C client (libtrstctl, conformance-c), the Python
package (the wheel installed into a fresh venv, conformance_python.py) and the Go module
(built offline out of the tree, conformance-go/), against one served trstctl in the
internal TLS mode with the server's certificate as the CA file and the bootstrap token.

The steps: an owner (created, read, one refused as INVALID_ARGUMENT, a missing one
NOT_FOUND); two identities, a certificate issued to one from a CSR (a second issue
FAILED_PRECONDITION) and to the other with a generated key; the CRL; a secret created,
read, rotated (a stale expected_version FAILED_PRECONDITION), listed, deleted (then
NOT_FOUND), recovered; a policy put (a bad one INVALID_ARGUMENT) and evaluated for a
token made for it, the token revoked; the audit records of the run listed and the chain
verified; the guard's status.

Each driver reads one step per line, {"method": ..., "request": {proto3 JSON}}, and
answers one line, {"code": "OK", "message": ..., "reply": {proto3 JSON}}; the CLI's driver
is the function cli_step below, which runs the command a user would type. Each client
uses its own names (a random tag), and later steps take ids from earlier replies. The
script then checks every client's codes against the expected ones and a few values of each
reply, and compares the replies across clients after normalizing what differs by nature
(ids, times, serials, PEM, hashes, the run tag; unset messages printed as null or left
out): they must be the same. A client that cannot run here (no wheel, no go) is skipped
and said so; the CLI and the C client always run.

  conformance.py --trstctl PATH --c-driver PATH [--wheel PATH] [--go GO --gocode DIR
                 --cache DIR] --source-root DIR
"""

import argparse
import base64
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile

import harness
from harness import expect

HERE = os.path.dirname(os.path.abspath(__file__))
NO_SUCH_ID = '00000000-0000-4000-8000-000000000000'

# Reply fields whose value differs from run to run by nature: compared as set or unset.
VOLATILE = {'id', 'ownerId', 'identityId', 'serial', 'pem', 'chainPem', 'privateKeyPem',
            'createTime', 'updateTime', 'deleteTime', 'destroyTime', 'notBefore', 'notAfter',
            'thisUpdate', 'nextUpdate', 'revokeTime', 'expireTime', 'lastUsedTime', 'time',
            'der', 'number', 'token', 'tokenId', 'parentId', 'sequence', 'prevHash', 'hash',
            'headHash', 'checked', 'dataJson', 'detail', 'nextPageToken', 'actor'}
UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')
HEX = re.compile(r'\b[0-9a-f]{16,}\b')
TIME = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z')


def b64(s):
    return base64.b64encode(s.encode()).decode()


def steps(tag, csr_pem):
    """(name, method, request(results), expected code, expected reply values)."""
    sname = 'conf/%s/db' % tag
    doc = json.dumps({'rules': [{'effect': 'allow', 'actions': ['Secrets.GetSecret'],
                                 'resources': ['secret/conf/%s/**' % tag]}]})
    return [
        ('owner', '/trstctl.v1.CA/CreateOwner',
         lambda r: {'kind': 'workload', 'name': 'conf-' + tag}, 'OK',
         {'kind': 'workload', 'name': 'conf-<run>', 'email': ''}),
        ('owner-get', '/trstctl.v1.CA/GetOwner', lambda r: {'id': r['owner']['id']}, 'OK',
         {'name': 'conf-<run>'}),
        ('owner-bad-kind', '/trstctl.v1.CA/CreateOwner',
         lambda r: {'kind': 'robot', 'name': 'conf-bad-' + tag}, 'INVALID_ARGUMENT', None),
        ('owner-missing', '/trstctl.v1.CA/GetOwner', lambda r: {'id': NO_SUCH_ID},
         'NOT_FOUND', None),
        ('identity-csr', '/trstctl.v1.CA/CreateIdentity',
         lambda r: {'kind': 'x509_certificate', 'name': tag + '-csr.conf.internal',
                    'ownerId': r['owner']['id'], 'dnsNames': [tag + '-csr.conf.internal'],
                    'ttlSeconds': '3600'}, 'OK',
         {'state': 'requested', 'ttlSeconds': '3600', 'dnsNames': ['<run>-csr.conf.internal']}),
        ('identity-gen', '/trstctl.v1.CA/CreateIdentity',
         lambda r: {'kind': 'x509_certificate', 'name': tag + '-gen.conf.internal',
                    'ownerId': r['owner']['id'], 'dnsNames': [tag + '-gen.conf.internal']},
         'OK', {'state': 'requested', 'keyType': 'ecdsa-p256'}),
        ('issue-csr', '/trstctl.v1.CA/IssueCertificate',
         lambda r: {'identityId': r['identity-csr']['id'], 'csrPem': csr_pem}, 'OK',
         {'privateKeyPem': '', 'revoked': False}),
        ('issue-again', '/trstctl.v1.CA/IssueCertificate',
         lambda r: {'identityId': r['identity-csr']['id']}, 'FAILED_PRECONDITION', None),
        ('issue-keygen', '/trstctl.v1.CA/IssueCertificate',
         lambda r: {'identityId': r['identity-gen']['id'], 'ttlSeconds': '600'}, 'OK',
         {'privateKeyPem': '<set>'}),
        ('crl', '/trstctl.v1.CA/GetCRL', lambda r: {}, 'OK', {'der': '<set>'}),
        ('secret-create', '/trstctl.v1.Secrets/CreateSecret',
         lambda r: {'name': sname, 'value': b64('conformance-v1'),
                    'labels': {'suite': 'conformance'}}, 'OK',
         {'version': '1', 'labels': {'suite': 'conformance'}, 'deleted': False}),
        ('secret-get', '/trstctl.v1.Secrets/GetSecret', lambda r: {'name': sname}, 'OK',
         {'version': '1', 'value': b64('conformance-v1')}),
        ('secret-rotate', '/trstctl.v1.Secrets/RotateSecret',
         lambda r: {'name': sname, 'value': b64('conformance-v2')}, 'OK', {'version': '2'}),
        ('secret-rotate-stale', '/trstctl.v1.Secrets/RotateSecret',
         lambda r: {'name': sname, 'value': b64('x'), 'expectedVersion': '1'},
         'FAILED_PRECONDITION', None),
        ('secret-list', '/trstctl.v1.Secrets/ListSecrets',
         lambda r: {'prefix': 'conf/%s/' % tag}, 'OK', None),
        ('secret-delete', '/trstctl.v1.Secrets/DeleteSecret', lambda r: {'name': sname},
         'OK', {'deleted': True}),
        ('secret-get-deleted', '/trstctl.v1.Secrets/GetSecret', lambda r: {'name': sname},
         'NOT_FOUND', None),
        ('secret-recover', '/trstctl.v1.Secrets/RecoverSecret', lambda r: {'name': sname},
         'OK', {'deleted': False, 'version': '2'}),
        ('secret-get-v1', '/trstctl.v1.Secrets/GetSecret',
         lambda r: {'name': sname, 'version': '1'}, 'OK', {'value': b64('conformance-v1')}),
        ('policy-put', '/trstctl.v1.Policy/PutPolicy',
         lambda r: {'name': 'conf-' + tag, 'document': doc}, 'OK', {'version': '1'}),
        ('policy-put-bad', '/trstctl.v1.Policy/PutPolicy',
         lambda r: {'name': 'conf-bad-' + tag, 'document': '{"rules": 7}'},
         'INVALID_ARGUMENT', None),
        ('token-create', '/trstctl.v1.Policy/CreateToken',
         lambda r: {'name': 'conf-' + tag, 'policies': ['conf-' + tag], 'ttlSeconds': '3600'},
         'OK', {'token': '<set>', 'tokenId': '<set>'}),
        ('evaluate-allow', '/trstctl.v1.Policy/Evaluate',
         lambda r: {'principal': r['token-create']['tokenId'], 'action': 'Secrets.GetSecret',
                    'resource': 'secret/' + sname}, 'OK',
         {'allowed': True, 'matchedPolicy': 'conf-<run>'}),
        ('evaluate-deny', '/trstctl.v1.Policy/Evaluate',
         lambda r: {'principal': r['token-create']['tokenId'], 'action': 'Secrets.GetSecret',
                    'resource': 'secret/elsewhere/db'}, 'OK', {'allowed': False}),
        ('token-revoke', '/trstctl.v1.Policy/RevokeToken',
         lambda r: {'id': r['token-create']['tokenId']}, 'OK',
         {'revoked': True, 'policies': ['conf-<run>']}),
        ('audit-list', '/trstctl.v1.Audit/ListEvents',
         lambda r: {'typePrefix': 'secret.'}, 'OK', None),
        ('audit-verify', '/trstctl.v1.Audit/VerifyChain', lambda r: {}, 'OK', {'ok': True}),
        ('guard-status', '/trstctl.v1.Guard/GetStatus', lambda r: {}, 'OK', None),
    ]


# Drivers --------------------------------------------------------------------------------

class Driver:
    """A driver program: one step line in, one result line out."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, cwd='/')

    def step(self, method, request):
        self.proc.stdin.write(json.dumps({'method': method, 'request': request}) + '\n')
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError('the driver ended: %s' % self.proc.stderr.read()[-2000:])
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(30)
        expect(rc == 0, 'the driver exited %d: %s' % (rc, self.proc.stderr.read()[-2000:]))


def cli_argv(method, q, tmp):
    """The command a user types for a step, and what goes to its stdin."""
    name = method.rsplit('/', 1)[1]
    stdin = None

    def file(text, fname):
        path = os.path.join(tmp, fname)
        with open(path, 'w') as f:
            f.write(text)
        return path

    if name == 'CreateOwner':
        a = ['owner', 'create', '--kind', q['kind'], '--name', q['name']]
    elif name == 'GetOwner':
        a = ['owner', 'get', q['id']]
    elif name == 'CreateIdentity':
        a = ['identity', 'create', '--kind', q['kind'], '--name', q['name'],
             '--owner', q['ownerId'], '--dns', ','.join(q['dnsNames'])]
        a += ['--ttl', q['ttlSeconds']] if 'ttlSeconds' in q else []
    elif name == 'IssueCertificate':
        a = ['cert', 'issue', q['identityId']]
        a += ['--csr', file(q['csrPem'], 'csr.pem')] if 'csrPem' in q else []
        a += ['--ttl', q['ttlSeconds']] if 'ttlSeconds' in q else []
    elif name == 'GetCRL':
        a = ['ca', 'crl']
    elif name in ('CreateSecret', 'RotateSecret'):
        a = ['secret', 'create' if name == 'CreateSecret' else 'rotate', q['name']]
        for k, v in q.get('labels', {}).items():
            a += ['--label', '%s=%s' % (k, v)]
        a += ['--expected-version', q['expectedVersion']] if 'expectedVersion' in q else []
        stdin = base64.b64decode(q['value'])
    elif name == 'GetSecret':
        a = ['secret', 'get', q['name']] + (['--version', q['version']] if 'version' in q
                                            else [])
    elif name == 'ListSecrets':
        a = ['secret', 'list', '--prefix', q['prefix']]
    elif name in ('DeleteSecret', 'RecoverSecret'):
        a = ['secret', 'delete' if name == 'DeleteSecret' else 'recover', q['name']]
    elif name == 'PutPolicy':
        a = ['policy', 'put', q['name'], file(q['document'], 'policy.json')]
    elif name == 'CreateToken':
        a = ['token', 'create', '--name', q['name'], '--ttl', q['ttlSeconds']]
        for p in q['policies']:
            a += ['--policy', p]
    elif name == 'Evaluate':
        a = ['policy', 'eval', q['action'], q['resource'], '--principal', q['principal']]
    elif name == 'RevokeToken':
        a = ['token', 'revoke', q['id']]
    elif name == 'ListEvents':
        a = ['audit', 'list', '--type', q['typePrefix'], '--limit', '0']
    elif name == 'VerifyChain':
        a = ['audit', 'verify']
    elif name == 'GetStatus':
        a = ['guard', 'status']
    else:
        raise AssertionError('no command for ' + method)
    return a, stdin


class CliDriver:
    """The command line: each step is one `trstctl ... -o json` run with only an address,
    a CA file and a token file (no TRSTCTL_* variable at all, no database setting)."""

    ERROR = re.compile(r'^trstctl: \S+ \S+: ([A-Z_]+): (.*)$')

    def __init__(self, exe, conn, tmp):
        self.exe, self.conn, self.tmp = exe, conn, tmp
        self.env = {'PATH': '/usr/bin:/bin'}

    def step(self, method, request):
        a, stdin = cli_argv(method, request, self.tmp)
        r = subprocess.run([self.exe] + a + ['-o', 'json'] + self.conn, input=stdin,
                           capture_output=True, env=self.env, timeout=60)
        out, err = r.stdout.decode(), r.stderr.decode()
        if r.returncode == 0:
            return {'code': 'OK', 'message': '', 'reply': json.loads(out)}
        for line in reversed(err.splitlines()):
            m = self.ERROR.match(line)
            if m:
                expect(r.returncode == 1, '%s: exit %d with a status, want 1'
                       % (' '.join(a), r.returncode))
                return {'code': m.group(1), 'message': m.group(2), 'reply': None}
        return {'code': 'EXIT_%d' % r.returncode, 'message': err.strip(), 'reply': None}

    def close(self):
        pass


# Comparison -----------------------------------------------------------------------------

def normalize(v, tag, key=None):
    if isinstance(v, dict):
        return {k: normalize(x, tag, k) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [normalize(x, tag) for x in v]
    if key in VOLATILE:
        return '<set>' if v not in ('', '0', 0, False, None) else v
    if isinstance(v, str):
        v = TIME.sub('<time>', HEX.sub('<hex>', UUID.sub('<uuid>', v.replace(tag, '<run>'))))
    return v


def run_client(name, driver, tag, csr_pem):
    """Every step through driver; returns {step: normalized result}."""
    results, raw = {}, {}
    try:
        for sname, method, req, code, want in steps(tag, csr_pem):
            res = driver.step(method, req(raw))
            raw[sname] = res.get('reply') or {}
            if sname == 'audit-list' and res.get('reply'):
                # this run's records only: the others' came before
                res['reply']['events'] = [e for e in res['reply'].get('events', [])
                                          if tag in e.get('resource', '')]
            res = normalize(res, tag)
            results[sname] = res
            expect(res['code'] == code, '%s %s: %s %s, want %s'
                   % (name, sname, res['code'], res.get('message', ''), code))
            for k, v in (want or {}).items():
                got = res['reply'].get(k)
                expect(got == v, '%s %s: %s = %r, want %r' % (name, sname, k, got, v))
    finally:
        driver.close()
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--c-driver', required=True)
    ap.add_argument('--wheel', default='')
    ap.add_argument('--go', default='')
    ap.add_argument('--gocode', default='/usr/share/gocode')
    ap.add_argument('--cache', default='')
    ap.add_argument('--source-root', required=True)
    args = ap.parse_args()
    args.trstctl, args.c_driver = os.path.abspath(args.trstctl), os.path.abspath(args.c_driver)
    checks = harness.Checks('conformance')
    skipped, results = [], {}

    with tempfile.TemporaryDirectory(prefix='trstctl-conf-') as tmp:
        drivers = {}

        def python_venv():
            import test_python_client
            if not args.wheel or not os.path.isfile(args.wheel):
                skipped.append('python: the wheel was not built')
                print('  ' + skipped[-1] + ': that client is skipped')
                return
            _, py = test_python_client.make_venv(os.path.join(tmp, 'py'), args.wheel)
            drivers['python'] = [py, os.path.join(HERE, 'conformance_python.py')]

        def go_build():
            import test_go_client
            if not args.go or not os.access(args.go, os.X_OK):
                skipped.append('go: go is not installed')
                print('  ' + skipped[-1] + ': that client is skipped')
                return
            if not os.path.isdir(os.path.join(args.gocode, 'src', 'google.golang.org/grpc')):
                skipped.append('go: Debian\'s Go gRPC sources are missing')
                print('  ' + skipped[-1] + ': that client is skipped')
                return
            drivers['go'] = [test_go_client.build_offline(
                args, os.path.join(HERE, 'conformance-go'), os.path.join(tmp, 'go'),
                'trstctl-conformance')]

        os.makedirs(os.path.join(tmp, 'py'))
        checks.run('python driver: the wheel in a fresh venv', python_venv)
        checks.run('go driver: built offline against clients/go', go_build)
        with harness.Server(args.trstctl, env={'TRSTCTL_SERVER_TLS_MODE': 'internal'}) as srv:
            checks.server = srv
            token, ca = srv.client_files(os.path.join(tmp, 'files'))
            conn = ['--addr', srv.addr, '--ca-file', ca, '--token-file', token]
            clients = [('cli', lambda: CliDriver(args.trstctl, conn, tmp)),
                       ('c', lambda: Driver([args.c_driver] + conn))]
            for name in ('python', 'go'):  # Go's flag package takes --addr too
                if name in drivers:
                    clients.append((name, lambda a=drivers[name]: Driver(a + conn)))
            for name, make in clients:
                tag = 'r' + secrets.token_hex(4)
                csr = os.path.join(tmp, tag + '.csr')
                subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt',
                                'ec_paramgen_curve:P-256', '-nodes', '-keyout',
                                os.path.join(tmp, tag + '.key'), '-subj',
                                '/CN=%s-csr.conf.internal' % tag, '-addext',
                                'subjectAltName=DNS:%s-csr.conf.internal' % tag,
                                '-out', csr], check=True, capture_output=True)
                with open(csr) as f:
                    csr_pem = f.read()

                def one(name=name, make=make, tag=tag, csr_pem=csr_pem):
                    results[name] = run_client(name, make(), tag, csr_pem)

                checks.run('%s: every step, expected codes and values' % name, one)

            def same():
                ref = 'cli' if 'cli' in results else next(iter(results), None)
                expect(ref and len(results) >= 2, 'fewer than two clients ran')
                bad = []
                for name, res in results.items():
                    for sname, r in res.items():
                        if r != results[ref].get(sname):
                            bad.append('%s differs from %s at %s:\n    %s\n    %s' % (
                                name, ref, sname, json.dumps(r, sort_keys=True),
                                json.dumps(results[ref].get(sname), sort_keys=True)))
                for sname, r in results[ref].items():  # what was compared
                    print('  %-19s %s' % (sname, json.dumps(r, sort_keys=True)[:300]))
                expect(not bad, '\n  '.join(bad))
                print('  %d clients, %d steps each, same results: %s'
                      % (len(results), len(steps('x', '')), ', '.join(sorted(results))))

            checks.run('every client: the same codes, messages and replies', same)
    for s in skipped:
        print('skipped %s' % s)
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
