#!/usr/bin/python3
"""The command line as a user runs it, against one served trstctl (internal TLS), in an
environment with no TRSTCTL_POSTGRES_DSN and, unless a check says otherwise, no TRSTCTL_*
variable at all:

- `guard status` with only --addr, --ca-file and --token-file; the same from TRSTCTL_ADDR,
  TRSTCTL_CA_FILE and TRSTCTL_TOKEN_FILE; beside the server from its own variables;
  `--help` of every command with an empty environment;
- exit statuses: 2 for bad arguments (nothing called), 1 with "<STATUS>: <message>" for a
  failed call (NOT_FOUND, UNAUTHENTICATED, UNAVAILABLE for an untrusted server), 3 for a
  broken audit chain;
- files: a certificate and its generated key written with --cert-out/--key-out (0600,
  never on stdout) and verified with openssl against `ca bundle`, the CRL in DER; secret
  values from stdin and --value-file, byte for byte back with --show-value and
  --value-out (0600), never from argv;
- `token create` prints only the token, which then works; lists follow their pages and
  stop at --limit; `audit watch` in a pipe, and until Ctrl-C; `audit verify` names a
  record changed behind the server's back (psql) and exits 3;
- the operator commands' --help needs no configuration and says they need the database;
  `trstctl completion bash` is valid bash and completes; docs/cli.md names every command
  `trstctl --help` lists.

  test_cli.py --trstctl PATH [--source-root DIR]
"""

import argparse
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

import harness
from harness import expect

PATH = {'PATH': '/usr/bin:/bin'}


class Cli:
    def __init__(self, exe, conn, tmp):
        self.exe, self.conn, self.tmp = exe, conn, tmp

    def run(self, *args, env=None, stdin=None, conn=True, binary=False):
        """(exit status, stdout, stderr) of `trstctl NOUN VERB [connection flags] ARGS...`
        (a flag in args given again wins: the last one does)."""
        args = list(args)
        argv = [self.exe] + args[:2] + (self.conn if conn else []) + args[2:]
        r = subprocess.run(argv,
                           input=stdin, capture_output=True, env=env or dict(PATH),
                           timeout=60)
        out = r.stdout if binary else r.stdout.decode()
        return r.returncode, out, r.stderr.decode()

    def ok(self, *args, **kw):
        rc, out, err = self.run(*args, **kw)
        expect(rc == 0, '`trstctl %s`: exit %d\n%s%s' % (' '.join(args), rc, out, err))
        return out

    def json(self, *args, **kw):
        return json.loads(self.ok(*(args + ('-o', 'json')), **kw))

    def path(self, name):
        return os.path.join(self.tmp, name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--source-root', default=os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))))
    args = ap.parse_args()
    exe = os.path.abspath(args.trstctl)
    checks = harness.Checks('cli')
    with tempfile.TemporaryDirectory(prefix='trstctl-cli-') as tmp, \
            harness.Server(exe, env={'TRSTCTL_SERVER_TLS_MODE': 'internal'}) as srv:
        checks.server = srv
        token, ca = srv.client_files(os.path.join(tmp, 'files'))
        conn = ['--addr', srv.addr, '--ca-file', ca, '--token-file', token]
        cli = Cli(exe, conn, tmp)
        state = {}

        def guard_status_three_flags():
            out = cli.ok('guard', 'status')
            expect(re.search(r'^enforcer:\s+\S+$', out, re.M), 'no enforcer line: ' + out)
            env = dict(PATH, TRSTCTL_ADDR=srv.addr, TRSTCTL_CA_FILE=ca,
                       TRSTCTL_TOKEN_FILE=token)
            rc, out, err = cli.run('guard', 'status', '-o', 'json', env=env, conn=False)
            expect(rc == 0 and json.loads(out)['enforcer'], 'from the variables: %d %s%s'
                   % (rc, out, err))
            # beside the server: its own variables (no DSN), its certificate and token
            env = {k: v for k, v in srv.env.items() if k != 'TRSTCTL_POSTGRES_DSN'}
            env['TRSTCTL_SERVER_ADDR'] = srv.addr
            rc, out, err = cli.run('guard', 'status', env=env, conn=False)
            expect(rc == 0 and 'enforcer:' in out, 'beside the server: %d %s%s'
                   % (rc, out, err))

        def help_without_configuration():
            rc, out, err = cli.run('--help', conn=False)
            expect(rc == 0 and 'secret rotate' in out and 'token create-root' in out,
                   'trstctl --help: %d %s' % (rc, out + err))
            for words in (['guard', 'status'], ['owner', 'create'], ['secret', 'get'],
                          ['audit', 'verify'], ['token', 'create'], ['cert', 'issue']):
                rc, out, err = cli.run(*words, '--help', env={}, conn=False)
                expect(rc == 0 and out.startswith('usage: trstctl ' + ' '.join(words)) and
                       '--addr' in out and not err,
                       '%s --help: %d %s%s' % (' '.join(words), rc, out, err))
            for words in (['migrate'], ['kek', 'rotate'], ['ca', 'import'],
                          ['token', 'create-root']):
                rc, out, err = cli.run(*words, '--help', env={}, conn=False)
                expect(rc == 0 and 'TRSTCTL_POSTGRES_DSN' in out and 'operator' in out.lower(),
                       '%s --help: %d %s%s' % (' '.join(words), rc, out, err))
            rc, out, err = cli.run('guard', 'attach', '--help', env={}, conn=False)
            expect(rc == 0 and 'Operator command' in out, 'guard attach --help: ' + out + err)

        def exit_statuses():
            for a in (['owner', 'get'], ['owner', 'frobnicate'], ['owner', 'list', '--bogus'],
                      ['secret', 'create', 'x/y', '--value', 'hunter2'],
                      ['secret', 'get', 'x/y', '-o', 'yaml'], ['owner', 'list', '--limit', 'x']):
                rc, out, err = cli.run(*a)
                expect(rc == 2 and err, '%s: exit %d, want 2: %s' % (' '.join(a), rc, err))
            rc, out, err = cli.run('owner', 'get', '00000000-0000-4000-8000-000000000000')
            expect(rc == 1 and re.search(r'^trstctl: owner get: NOT_FOUND: owner \S+ not found$',
                                         err, re.M), 'NOT_FOUND: %d %s' % (rc, err))
            bad = cli.path('bad-token')
            with open(bad, 'w') as f:
                f.write('trst_' + 'x' * 43 + '\n')
            rc, out, err = cli.run('owner', 'list', '--token-file', bad)
            expect(rc == 1 and 'UNAUTHENTICATED: ' in err, 'bad token: %d %s' % (rc, err))
            os.makedirs(cli.path('pki'))
            other = harness.make_pki(cli.path('pki'))
            rc, out, err = cli.run('guard', 'status', '--ca-file', other['ca.pem'])
            expect(rc == 1 and 'UNAVAILABLE: ' in err, 'untrusted: %d %s' % (rc, err))

        def certificates():
            o = cli.json('owner', 'create', '--kind', 'workload', '--name', 'cli-payments')
            i = cli.json('identity', 'create', '--kind', 'x509_certificate', '--name',
                         'api.cli.internal', '--owner', o['id'], '--dns',
                         'api.cli.internal,www.cli.internal', '--ttl', '2h')
            expect(i['dnsNames'] == ['api.cli.internal', 'www.cli.internal'] and
                   i['ttlSeconds'] == '7200', 'identity: %s' % i)
            out = cli.ok('identity', 'transition', i['id'], '--to', 'issued', '--reason',
                         'cli test', '--cert-out', cli.path('cert.pem'),
                         '--key-out', cli.path('key.pem'))
            expect('PRIVATE KEY' not in out and re.search(r'^state:\s+issued$', out, re.M),
                   'transition: ' + out)
            expect(stat.S_IMODE(os.stat(cli.path('key.pem')).st_mode) == 0o600, 'key mode')
            with open(cli.path('bundle.pem'), 'w') as f:
                f.write(cli.ok('ca', 'bundle'))
            r = subprocess.run(['openssl', 'verify', '-CAfile', cli.path('bundle.pem'),
                                cli.path('cert.pem')], capture_output=True, text=True)
            expect(r.returncode == 0, 'openssl verify: ' + r.stdout + r.stderr)
            r = subprocess.run('openssl x509 -noout -pubkey -in %s | cmp - <(openssl pkey '
                               '-pubout -in %s)' % (cli.path('cert.pem'), cli.path('key.pem')),
                               shell=True, executable='/bin/bash', capture_output=True)
            expect(r.returncode == 0, 'the key does not match the certificate')
            cli.ok('ca', 'crl', '--der-out', cli.path('crl.der'))
            r = subprocess.run(['openssl', 'crl', '-inform', 'DER', '-in', cli.path('crl.der'),
                                '-noout'], capture_output=True)
            expect(r.returncode == 0, 'the CRL in DER does not parse')
            # a key file that cannot be written: exit 1, and the key is printed, not lost
            i2 = cli.json('identity', 'create', '--kind', 'x509_certificate', '--name',
                          'api2.cli.internal', '--owner', o['id'], '--dns', 'api2.cli.internal')
            rc, out, err = cli.run('cert', 'issue', i2['id'], '--key-out',
                                   '/nonexistent/key.pem')
            expect(rc == 1 and 'cannot write /nonexistent/key.pem' in err and
                   'PRIVATE KEY' in out, 'unwritable --key-out: %d %s' % (rc, err))
            rc, out, err = cli.run('identity', 'transition', i['id'], '--to', 'retired')
            expect(rc == 1 and 'FAILED_PRECONDITION: invalid transition' in err,
                   'retired from issued: %d %s' % (rc, err))
            state['owner'] = o['id']

        def secrets():
            value = b'\x00binary\nsecret\xff'
            cli.ok('secret', 'create', 'cli/db/pw', '--label', 'team=pay', stdin=value)
            with open(cli.path('v2'), 'wb') as f:
                f.write(value + b'2')
            out = cli.ok('secret', 'rotate', 'cli/db/pw', '--value-file', cli.path('v2'))
            expect(re.search(r'^version:\s+2$', out, re.M), 'rotate: ' + out)
            rc, out, err = cli.run('secret', 'get', 'cli/db/pw', '--show-value', binary=True)
            expect(rc == 0 and out == value + b'2', 'show-value: %r' % out)
            rc, out, err = cli.run('secret', 'get', 'cli/db/pw', '--version', '1',
                                   '--show-value', binary=True)
            expect(rc == 0 and out == value, 'version 1: %r' % out)
            with open(cli.path('out'), 'w') as f:  # there already, readable by all
                f.write('old')
            os.chmod(cli.path('out'), 0o644)
            out = cli.ok('secret', 'get', 'cli/db/pw', '--value-out', cli.path('out'))
            with open(cli.path('out'), 'rb') as f:
                expect(f.read() == value + b'2', 'value-out')
            expect(stat.S_IMODE(os.stat(cli.path('out')).st_mode) == 0o600, 'value-out mode')
            expect('secret' not in out, 'the value was printed: ' + out)
            j = cli.json('secret', 'get', 'cli/db/pw')
            expect(j['value'] == 'AGJpbmFyeQpzZWNyZXT/Mg==' and j['version'] == '2', str(j))

        def tokens_and_lists():
            out = cli.ok('policy', 'put', 'cli-ops', '-', stdin=json.dumps(
                {'rules': [{'effect': 'allow', 'actions': ['CA.*'],
                            'resources': ['**']}]}).encode())
            expect('version 1' in out, 'policy put: ' + out)
            rc, out, err = cli.run('token', 'create', '--policy', 'cli-ops', '--ttl', '1h')
            expect(rc == 0 and re.fullmatch(r'trst_\S+\n', out) and 'token_id: ' in err,
                   'token create: %d %r %s' % (rc, out, err))
            tok = cli.path('ops-token')
            with open(tok, 'w') as f:
                f.write(out)
            for n in range(3):
                cli.ok('owner', 'create', '--kind', 'team', '--name', 'cli-list-%d' % n,
                       '--token-file', tok)
            rc, out, err = cli.run('guard', 'status', '--token-file', tok)
            expect(rc == 1 and 'PERMISSION_DENIED' in err, 'outside its policy: ' + err)
            rows = cli.ok('owner', 'list', '--page-size', '1').strip().splitlines()
            expect(len(rows) == 1 + 4 and rows[0].split()[:3] == ['ID', 'KIND', 'NAME'],
                   'every page: %s' % rows)
            j = cli.json('owner', 'list', '--page-size', '1', '--limit', '2')
            expect(len(j['owners']) == 2 and j['nextPageToken'], 'limit: %s' % j)
            one = cli.json('owner', 'list', '--page-size', '2', '--page-token',
                           j['nextPageToken'])
            expect(len(one['owners']) == 2, 'one page: %s' % one)
            tid = [t for t in cli.json('token', 'list')['tokens'] if t['policies'] ==
                   ['cli-ops']][0]['id']
            expect(cli.json('token', 'revoke', tid)['revoked'] is True, 'revoke')

        def audit():
            out = cli.ok('audit', 'list', '--type', 'owner.', '--limit', '2')
            lines = out.strip().splitlines()
            expect(len(lines) == 2 and re.match(
                r'^\d+ \d{4}-\d\d-\d\dT\S+Z owner\.created ok actor=\S+ resource=owners/\S+ '
                r'data=\{.*\} hash=[0-9a-f]{16}$', lines[0]), 'audit list: %s' % lines)
            head = int(cli.json('audit', 'list', '--limit', '0')['events'][-1]['sequence'])
            r = subprocess.run([exe, 'audit', 'watch', '--after', str(head - 2), '--limit',
                                '2'] + conn, capture_output=True, text=True, timeout=30,
                               env=dict(PATH))
            seqs = [int(line.split()[0]) for line in r.stdout.splitlines()]
            expect(r.returncode == 0 and seqs == [head - 1, head], 'watch: %s %s'
                   % (seqs, r.stderr))
            # without --limit it watches until Ctrl-C (SIGINT), which ends it
            w = subprocess.Popen([exe, 'audit', 'watch', '--after', str(head - 1)] + conn,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dict(PATH))
            first = w.stdout.readline()
            w.send_signal(signal.SIGINT)
            try:
                w.wait(10)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
                raise AssertionError('audit watch did not end on SIGINT')
            expect(first.startswith('%d ' % head), 'watch until SIGINT: %r' % first)
            out = cli.ok('audit', 'verify')
            expect(out.startswith('ok: '), 'verify: ' + out)
            rc, out, err = cli.run('audit', 'verify', '--from', '100000')
            expect(rc == 1 and 'INVALID_ARGUMENT: ' in err and 'past the head' in err,
                   'past the head: %d %s' % (rc, err))
            if not shutil.which('psql'):
                print('  psql is not installed: a record is not changed behind the server')
                return
            dsn = srv.env['TRSTCTL_POSTGRES_DSN']

            def sql(q):
                r = subprocess.run(['psql', dsn, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', q],
                                   capture_output=True, text=True)
                expect(r.returncode == 0, 'psql: ' + r.stderr)
                return r.stdout.strip()

            actor = sql('SELECT actor FROM audit_events WHERE sequence = 3')
            sql("UPDATE audit_events SET actor = 'someone else' WHERE sequence = 3")
            try:
                rc, out, err = cli.run('audit', 'verify')
                expect(rc == 3 and out.startswith('BROKEN at sequence 3:'),
                       'tampered: %d %s%s' % (rc, out, err))
                rc, out, err = cli.run('audit', 'verify', '-o', 'json')
                expect(rc == 3 and json.loads(out)['firstBadSequence'] == '3',
                       'tampered, json: %d %s' % (rc, out))
                cli.ok('audit', 'verify', '--from', '1', '--to', '2')
            finally:
                sql("UPDATE audit_events SET actor = '%s' WHERE sequence = 3"
                    % actor.replace("'", "''"))
            cli.ok('audit', 'verify')

        def completion():
            script = cli.ok('completion', 'bash', conn=False)
            path = cli.path('completion.bash')
            with open(path, 'w') as f:
                f.write(script)
            r = subprocess.run(['bash', '-n', path], capture_output=True, text=True)
            expect(r.returncode == 0, 'bash -n: ' + r.stderr)
            for words, want in ((['trstctl', 'own'], 'owner'),
                                (['trstctl', 'secret', 'ro'], 'rotate'),
                                (['trstctl', 'identity', 'create', '--ow'], '--owner'),
                                (['trstctl', 'secret', 'list', '-o', 'j'], 'json')):
                r = subprocess.run(
                    ['bash', '-c', '. "$1"; shift; COMP_WORDS=("$@"); '
                     'COMP_CWORD=$(($# - 1)); _trstctl; printf "%s\\n" "${COMPREPLY[@]}"',
                     'x', path] + words, capture_output=True, text=True)
                expect(want in r.stdout.split(), '%s: %r' % (words, r.stdout))

        def docs_name_every_command():
            out = cli.ok('--help', conn=False)
            cmds = re.findall(r'^  ([a-z]+ [a-z-]+) {2,}', out.split('client commands')[1],
                              re.M)
            expect(len(cmds) >= 35, 'only %d commands in --help' % len(cmds))
            with open(os.path.join(args.source_root, 'docs', 'cli.md')) as f:
                doc = f.read()
            missing = [c for c in cmds + ['migrate', 'kek rotate', 'ca import', 'ca csr',
                                          'ca import-signed', 'token create-root',
                                          'guard attach']
                       if '`' + c not in doc and '`trstctl ' + c not in doc]
            expect(not missing, 'docs/cli.md does not name: %s' % ', '.join(missing))

        checks.run('guard status with only an address, a CA file and a token file',
                   guard_status_three_flags)
        checks.run('--help needs no configuration; operator commands say what they need',
                   help_without_configuration)
        checks.run('exit statuses: 2 usage, 1 with the gRPC status', exit_statuses)
        checks.run('certificates: --cert-out/--key-out, openssl, CRL in DER', certificates)
        checks.run('secrets: stdin, --value-file, --show-value, --value-out', secrets)
        checks.run('token create prints only the token; lists page and stop', tokens_and_lists)
        checks.run('audit: list, watch in a pipe, verify; a changed record exits 3', audit)
        checks.run('completion bash', completion)
        checks.run('docs/cli.md names every command', docs_name_every_command)
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
