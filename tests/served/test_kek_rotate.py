#!/usr/bin/python3
"""`trstctl kek rotate --new-file PATH` against a served database (issue 5).

  run-with-pg.sh test_kek_rotate.py --trstctl PATH

run-with-pg.sh provides a PostgreSQL (TRSTCTL_POSTGRES_DSN) that outlives the servers.
A server on KEK A creates secrets (several versions, one destroyed), issues a certificate
and audits all of it; it stops. Then:
  - `kek rotate --new-file B` re-wraps every sealed value: each blob now carries B's id
    while its value nonce, ciphertext and tag are byte for byte what they were;
  - running it again changes nothing;
  - a server on A refuses to start ("the KEK does not match this database");
  - a server on B reads every version back, VerifyChain is ok (its checkpoints are signed
    by the sealed audit key) with a kek.rotated record, and issuance works (CA key);
  - an interrupted rotation B -> C (one blob put back, the kek_check marker row of a
    rotation in progress) blocks servers on B and on C, and re-running finishes it.
Exit 77 when PostgreSQL, grpcio or the binary are missing.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile

import harness
from harness import expect
import spine

HEADER_ID = "encode(substring(sealed FROM 5 FOR 8), 'hex')"
TAIL = "encode(substring(sealed FROM 73), 'hex')"  # value nonce, ciphertext, tag


def blobs(dsn):
    """{(table, row): (kek id, value part)} of every sealed value."""
    out = {}
    for r in spine.psql(dsn, "SELECT kind || '/' || name || '/' || version, %s, %s "
                             "FROM sealed_keys" % (HEADER_ID, TAIL)):
        out[('sealed_keys', r[0])] = (r[1], r[2])
    for r in spine.psql(dsn, "SELECT name || '/' || version, %s, %s FROM secret_versions "
                             "WHERE sealed IS NOT NULL" % (HEADER_ID, TAIL)):
        out[('secret_versions', r[0])] = (r[1], r[2])
    return out


class Test:
    def __init__(self, exe, dsn, tmp):
        self.exe, self.dsn, self.tmp = exe, dsn, tmp
        self.kek = {k: spine.make_kek(os.path.join(tmp, 'kek-%s.bin' % k)) for k in 'ABC'}
        self.values = {}  # (name, version) -> bytes
        self.ids = {}     # 'A' -> kek id
        self.srv = None

    def env(self, k):
        return spine.server_env(self.tmp, self.dsn, self.kek[k])

    def start(self, k):
        self.srv = harness.Server(self.exe, self.env(k), start_timeout=60).start()
        return spine.Api(self.srv, self.srv.bootstrap_token())

    def stop(self):
        if self.srv:
            code = self.srv.stop()
            self.srv = None
            expect(code == 0, 'server exit %s' % code)

    def rotate(self, old, new):
        env = {k: v for k, v in os.environ.items() if not k.startswith('TRSTCTL_')}
        env.update(self.env(old), TRSTCTL_SERVER_ADDR='127.0.0.1:0')
        code, out = harness.run_cmd([self.exe, 'kek', 'rotate', '--new-file', self.kek[new]],
                                    env=env, timeout=120)
        print('  $ trstctl kek rotate --new-file kek-%s.bin  (configured %s) -> %d\n    %s'
              % (new, old, code, out.strip().replace('\n', '\n    ')))
        m = re.search(r'kek rotate: ([0-9a-f]{16}) -> ([0-9a-f]{16})', out)
        if m:
            self.ids[old], self.ids[new] = m.group(1), m.group(2)
        return code, out

    def refused(self, k):
        srv = harness.Server(self.exe, self.env(k), start_timeout=60)
        try:
            srv.start()
        except harness.ServerError:
            pass
        else:
            srv.stop()
            raise AssertionError('a server on KEK %s started' % k)
        log = srv.log()
        srv.stop()
        expect(srv.proc.returncode == 1, 'exit %s, want 1' % srv.proc.returncode)
        expect('the KEK does not match this database' in log,
               'no "the KEK does not match this database" in:\n%s' % srv.log_tail())

    def read_all(self, api):
        for (name, version), value in sorted(self.values.items()):
            s = api.get_secret(name, version)
            expect(s.value == value and s.version == version,
                   '%s v%d reads back differently' % (name, version))

    # the steps

    def populate(self):
        api = self.start('A')
        for i in range(5):
            name = 'rotate/app-%d/password' % i
            for v in range(1, 2 + i % 3):
                value = os.urandom(12 + i) + b'-%d' % v
                m = (api.create_secret if v == 1 else api.rotate_secret)(name, value)
                expect(m.version == v, 'version %d, want %d' % (m.version, v))
                self.values[(name, v)] = value
        d = api.secrets.DestroySecretVersion(api.secrets_pb2.DestroySecretVersionRequest(
            name='rotate/app-2/password', version=1), timeout=10)
        del self.values[('rotate/app-2/password', 1)]
        print('  %d secret versions (one more destroyed: %s)' % (len(self.values), d.name))
        api.issue('before')
        v = api.verify_chain()
        expect(v.ok, 'VerifyChain before rotation: %s' % v.detail)
        api.close()
        self.stop()

    def rotate_ab(self):
        before = blobs(self.dsn)
        kinds = sorted({row.split('/')[0] for t, row in before if t == 'sealed_keys'})
        expect(kinds == ['audit', 'ca'], 'sealed_keys kinds %s, want audit and ca' % kinds)
        code, out = self.rotate('A', 'B')
        expect(code == 0, 'kek rotate exit %d' % code)
        n_sv = sum(1 for t, _ in before if t == 'secret_versions')
        expect('secret_versions: re-wrapped %d, already under the new KEK 0' % n_sv in out,
               'secret_versions count (want %d)' % n_sv)
        expect('sealed_keys: re-wrapped %d,' % (len(before) - n_sv) in out, 'sealed_keys')
        after = blobs(self.dsn)
        expect(set(after) == set(before), 'the set of sealed rows changed')
        for k, (kid, tail) in after.items():
            expect(before[k][0] == self.ids['A'], '%s was not under A before' % (k,))
            expect(kid == self.ids['B'], '%s is under %s, want B %s' % (k, kid, self.ids['B']))
            expect(tail == before[k][1], '%s: the value ciphertext changed' % (k,))
        rows = spine.psql(self.dsn, 'SELECT kek_id FROM kek_check')
        expect(rows == [[self.ids['B']]], 'kek_check %s, want only B' % rows)

    def rotate_twice(self):
        before = blobs(self.dsn)
        code, out = self.rotate('A', 'B')
        expect(code == 0, 'second kek rotate exit %d' % code)
        expect('nothing to do' in out and 're-wrapped 0' in out, 'second run did something')
        expect(blobs(self.dsn) == before, 'second run changed blobs')
        code, out = self.rotate('B', 'B')
        expect(code == 1 and 'nothing to rotate to' in out, 'same KEK: %d %s' % (code, out))

    def old_refused(self):
        self.refused('A')

    def new_serves(self):
        api = self.start('B')
        self.read_all(api)
        v = api.verify_chain()
        expect(v.ok and v.checked > 0, 'VerifyChain after rotation: %s' % v.detail)
        rot = api.events('kek.rotated')
        expect(len(rot) == 1 and self.ids['B'] in rot[0].resource,
               'kek.rotated records: %s' % [(e.resource, e.data_json) for e in rot])
        api.issue('after')
        m = api.create_secret('rotate/after', b'sealed under B')
        self.values[('rotate/after', m.version)] = b'sealed under B'
        self.read_all(api)
        api.close()
        self.stop()

    def interrupted(self):
        before = blobs(self.dsn)
        code, _ = self.rotate('B', 'C')
        expect(code == 0, 'kek rotate B -> C exit %d' % code)
        # Put one secret version back under B and the marker of a rotation in progress in
        # kek_check: what a rotation killed after its first batches leaves.
        key = sorted(k for k in before if k[0] == 'secret_versions')[0]
        name, version = key[1].rsplit('/', 1)
        spine.psql(self.dsn, "UPDATE secret_versions SET sealed = decode('%s', 'hex') || "
                             "substring(sealed FROM 73) WHERE name = '%s' AND version = %s"
                   % (self._head_b(name, version), name, version))
        spine.psql(self.dsn, "UPDATE kek_check SET kek_id = 'rotating-to-' || kek_id")
        self.refused('B')
        self.refused('C')
        code, out = self.rotate('B', 'C')
        expect(code == 0 and 'interrupted' in out, 'resume exit %d' % code)
        expect('secret_versions: re-wrapped 1,' in out and 'sealed_keys: re-wrapped 0,' in out,
               'resume re-wrapped other than the one blob')
        expect(all(kid == self.ids['C'] for kid, _ in blobs(self.dsn).values()),
               'a blob is not under C')
        api = self.start('C')
        self.read_all(api)
        v = api.verify_chain()
        expect(v.ok, 'VerifyChain after C: %s' % v.detail)
        api.close()
        self.stop()

    def _head_b(self, name, version):
        """The 72-byte header of a blob under B: kept from before the B -> C rotation."""
        return self.saved[(name, version)]

    def save_headers(self):
        self.saved = {}
        for r in spine.psql(self.dsn, "SELECT name, version, encode(substring(sealed FROM 1 "
                                      "FOR 72), 'hex') FROM secret_versions "
                                      "WHERE sealed IS NOT NULL"):
            self.saved[(r[0], r[1])] = r[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    dsn = os.environ.get('TRSTCTL_POSTGRES_DSN')
    if not dsn:
        harness.skip('no TRSTCTL_POSTGRES_DSN: run under server/db/run-with-pg.sh')
    if not shutil.which('psql'):
        harness.skip('psql not found')
    tmp = tempfile.mkdtemp(prefix='trstctl-kekrot-')
    t = Test(args.trstctl, dsn, tmp)
    checks = harness.Checks('kek rotate')
    try:
        for name, fn in (('populate under KEK A: secrets, versions, a certificate', t.populate),
                         ('rotate A -> B: every blob re-wrapped, values untouched',
                          t.rotate_ab),
                         ('rotate again: harmless', t.rotate_twice),
                         ('a server on A refuses to start', t.old_refused),
                         ('B: every version reads back, chain verifies, CA issues',
                          t.new_serves),
                         ('interrupted B -> C: servers refused, re-run finishes', t.interrupted)):
            if name.startswith('interrupted'):
                t.save_headers()
            checks.server = t.srv
            if not checks.run(name, fn):
                break
    finally:
        if t.srv:
            t.srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
