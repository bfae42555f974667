"""API hygiene with buf (api/buf.yaml): lint, and breaking changes against the last release.

  test_buf.py lint
    - the buf module is api/ and holds every .proto under it (a file added to trstctl/v1/
      is linted without being listed anywhere) but the vendored OTLP subset in api/otlp/
      (OpenTelemetry's protocol, upstream's names; buf.yaml excludes it);
    - `buf lint` reports nothing on api/ (rules STANDARD, the exceptions in buf.yaml);
    - the rules bite: in a copy of api/, a new file with a badly named request and a
      camelCase field is reported (RPC_REQUEST_STANDARD_NAME, FIELD_LOWER_SNAKE_CASE) and
      nothing else is.
  test_buf.py breaking
    - api/baseline/ holds one image, the API of the last release (api/baseline/README.md);
    - `buf breaking` (rules FILE) reports nothing on api/ against it;
    - the rules bite: in copies of api/, a renamed field, a deleted field, a changed type and
      a message moved to another file (harmless on the wire, not in the generated clients:
      FILE, not WIRE_JSON) are each reported by their rule, while an added field, method
      and file are not.

buf comes from scripts/install-deps (.tools/bin); see buftool.py for when a missing buf
fails and when it skips (77).
"""

import glob
import json
import os
import shutil
import sys
import tempfile

import buftool

VENDORED = 'otlp' + os.sep  # api/otlp/: not trstctl's API (api/otlp/README.md)
GO_PACKAGE = 'option go_package = "trstctl.dev/trstctl/clients/go/trstctl/v1;trstctlv1";'


class Checks:
    def __init__(self):
        self.failed = []

    def run(self, name, fn):
        print('--- %s' % name, flush=True)
        try:
            fn()
        except AssertionError as e:
            self.failed.append(name)
            print('FAIL %s: %s' % (name, e), flush=True)
            return
        print('ok   %s' % name, flush=True)

    def finish(self):
        print('=== %d failed%s' % (len(self.failed), (': ' + ', '.join(self.failed))
                                    if self.failed else ''), flush=True)
        return 1 if self.failed else 0


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def findings(out):
    """The (rule, path) pairs of buf's --error-format=json output."""
    got = set()
    for line in out.splitlines():
        if line.strip():
            d = json.loads(line)
            got.add((d['type'], d['path']))
    return got


class Copy:
    """A copy of the module (buf.yaml and trstctl/) in a temporary folder, to be edited."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='trstctl-buf-')
        shutil.copy(os.path.join(buftool.API, 'buf.yaml'), self.dir)
        shutil.copytree(os.path.join(buftool.API, 'trstctl'), os.path.join(self.dir, 'trstctl'))

    def edit(self, rel, old, new):
        path = os.path.join(self.dir, rel)
        with open(path) as f:
            text = f.read()
        expect(old in text, '%s no longer holds %r: update this test' % (rel, old))
        with open(path, 'w') as f:
            f.write(text.replace(old, new, 1))

    def write(self, rel, text):
        with open(os.path.join(self.dir, rel), 'w') as f:
            f.write(text)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# -- lint -----------------------------------------------------------------------------------

def every_proto_in_module():
    rc, out, err = buftool.run(['ls-files'], cwd=buftool.API)
    expect(rc == 0, 'buf ls-files: exit %d: %s' % (rc, err.strip()))
    listed = sorted(out.split())
    want = sorted(r for r in (os.path.relpath(p, buftool.API) for p in
                              glob.glob(os.path.join(buftool.API, '**', '*.proto'),
                                        recursive=True))
                  if not r.startswith(VENDORED))
    expect(want, 'no .proto under %s' % buftool.API)
    expect(listed == want, 'buf lints %s, the folder holds %s' % (listed, want))
    print('    %d files: %s' % (len(listed), ' '.join(listed)))


def lint_clean():
    rc, out, err = buftool.run(['lint'], cwd=buftool.API)
    expect(rc == 0, 'buf lint: exit %d:\n%s%s' % (rc, out, err))


def lint_bites():
    c = Copy()
    try:
        c.write('trstctl/v1/lint_probe.proto', '\n'.join([
            'syntax = "proto3";', 'package trstctl.v1;', GO_PACKAGE,
            'service Probe {', '  rpc GetThing(ThingQuery) returns (Thing);', '}',
            'message ThingQuery { string thingId = 1; }',
            'message Thing { string id = 1; }', '']))
        rc, out, err = buftool.run(['lint', '--error-format=json'], cwd=c.dir)
        probe = 'trstctl/v1/lint_probe.proto'
        want = {('RPC_REQUEST_STANDARD_NAME', probe), ('FIELD_LOWER_SNAKE_CASE', probe)}
        expect(rc != 0, 'buf lint passed a file with a camelCase field')
        expect(findings(out) == want, 'want %s, buf lint said %s %s' % (
            sorted(want), sorted(findings(out)), err.strip()))
    finally:
        c.close()


# -- breaking -------------------------------------------------------------------------------

def baseline():
    found = glob.glob(os.path.join(buftool.API, 'baseline', 'v*.binpb'))
    expect(len(found) == 1, 'want one image in api/baseline (the last release), found %s'
           % found)
    return found[0]


def breaking(folder):
    return buftool.run(['breaking', '--against', baseline(), '--error-format=json'], cwd=folder)


def has_baseline():
    print('    baseline %s' % os.path.relpath(baseline(), buftool.REPO))


def breaking_clean():
    rc, out, err = breaking(buftool.API)
    expect(rc == 0, 'buf breaking against %s: exit %d:\n%s%s' % (
        os.path.basename(baseline()), rc, out, err))


CA = 'trstctl/v1/ca.proto'
SECRETS = 'trstctl/v1/secrets.proto'

# (what, edits, the rules buf must report); each case is applied to a fresh copy.
BREAKS = [
    ('a renamed field (Owner.email -> mail)',
     [(CA, 'message Owner {\n  string id = 1;\n  string kind = 2;\n  string name = 3;\n'
           '  string email = 4;', 'message Owner {\n  string id = 1;\n  string kind = 2;\n'
           '  string name = 3;\n  string mail = 4;')],
     {'FIELD_SAME_NAME', 'FIELD_SAME_JSON_NAME'}),
    ('a deleted field (CRL.number)', [(CA, '  int64 number = 5;\n', '')], {'FIELD_NO_DELETE'}),
    ('a changed type (Secret.version int64 -> string)',
     [(SECRETS, 'message Secret {\n  string name = 1;\n  int64 version = 2;',
       'message Secret {\n  string name = 1;\n  string version = 2;')], {'FIELD_SAME_TYPE'}),
    ('a message moved to another file (CABundle)',
     [(CA, 'message CABundle {\n  string pem = 1;\n}\n', ''),
      (CA, 'import "google/protobuf/timestamp.proto";',
       'import "google/protobuf/timestamp.proto";\nimport "trstctl/v1/bundle.proto";'),
      ('trstctl/v1/bundle.proto', None, '\n'.join([
          'syntax = "proto3";', 'package trstctl.v1;', GO_PACKAGE,
          'message CABundle {', '  string pem = 1;', '}', '']))],
     {'MESSAGE_NO_DELETE'}),
]


def apply(c, edits):
    for rel, old, new in edits:
        if old is None:
            c.write(rel, new)
        else:
            c.edit(rel, old, new)


def breaks_reported():
    for what, edits, rules in BREAKS:
        c = Copy()
        try:
            apply(c, edits)
            rc, out, err = breaking(c.dir)
            got = {rule for rule, _ in findings(out)}
            expect(rc != 0 and got == rules, '%s: want %s, buf breaking said %s (exit %d) %s'
                   % (what, sorted(rules), sorted(got), rc, err.strip()))
            print('    %s: %s' % (what, ', '.join(sorted(got))))
        finally:
            c.close()


def additions_pass():
    c = Copy()
    try:
        apply(c, [
            (CA, '  string email = 4;\n  google.protobuf.Timestamp create_time = 5;\n',
             '  string email = 4;\n  google.protobuf.Timestamp create_time = 5;\n'
             '  string display_name = 6;\n'),
            (CA, '  rpc GetCRL(GetCRLRequest) returns (CRL);\n',
             '  rpc GetCRL(GetCRLRequest) returns (CRL);\n'
             '  rpc DeleteOwner(DeleteOwnerRequest) returns (Owner);\n'),
            (CA, 'message GetCRLRequest {}\n',
             'message GetCRLRequest {}\n\nmessage DeleteOwnerRequest {\n'
             '  string request_id = 1;\n  string id = 2;\n}\n'),
            ('trstctl/v1/probe.proto', None, '\n'.join([
                'syntax = "proto3";', 'package trstctl.v1;', GO_PACKAGE,
                'service Probe {', '  rpc Ping(PingRequest) returns (PingResponse);', '}',
                'message PingRequest {}', 'message PingResponse {}', '']))])
        rc, out, err = breaking(c.dir)
        expect(rc == 0, 'additions reported as breaking: exit %d: %s%s' % (rc, out, err))
        rc, out, err = buftool.run(['lint'], cwd=c.dir)
        expect(rc == 0, 'the additions do not lint: %s%s' % (out, err))
    finally:
        c.close()


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ('lint', 'breaking'):
        print('usage: test_buf.py lint|breaking', file=sys.stderr)
        return 2
    buftool.find()
    rc, out, _ = buftool.run(['--version'])
    print('buf %s (%s)' % (out.strip(), buftool.BUF), flush=True)
    checks = Checks()
    if sys.argv[1] == 'lint':
        cases = [('the module holds every .proto under api/', every_proto_in_module),
                 ('buf lint reports nothing on api/', lint_clean),
                 ('buf lint reports the defects of a new file in trstctl/v1', lint_bites)]
    else:
        cases = [('api/baseline holds the image of the last release', has_baseline),
                 ('buf breaking reports nothing against the baseline', breaking_clean),
                 ('buf breaking reports each break by its rule', breaks_reported),
                 ('an added field, method and file are not breaking', additions_pass)]
    for name, fn in cases:
        checks.run(name, fn)
    return checks.finish()


if __name__ == '__main__':
    raise SystemExit(main())
