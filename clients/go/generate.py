#!/usr/bin/python3
"""Writes the Go code of the trstctl API (clients/go/trstctl/v1) from api/trstctl/v1.

The generated files are committed, so that the module clients/go is usable as it is (a
`require` with a `replace`, or a fetch of the repository). This script makes them again
with protoc, protoc-gen-go and protoc-gen-go-grpc (Debian: protobuf-compiler,
protoc-gen-go, protoc-gen-go-grpc). The import path comes from the go_package option of
each proto; `module=` strips the module path so the files land in trstctl/v1.

  generate.py [--check] [--protoc PROTOC] [--protobuf-include DIR]

--check writes into a temporary folder and compares with the committed files instead:
exit 1 with a diff when they differ (a proto changed and generate.py was not run), 0 when
they match. The "// versions:" header lines (plugin and protoc versions) are not
compared, so a newer toolchain with the same output does not fail the check.
"""

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
API = os.path.join(ROOT, 'api')
MODULE = 'trstctl.dev/trstctl/clients/go'
PKG = os.path.join('trstctl', 'v1')


def generate(out, protoc, include):
    protos = sorted(os.path.join('trstctl', 'v1', n)
                    for n in os.listdir(os.path.join(API, 'trstctl', 'v1'))
                    if n.endswith('.proto'))
    cmd = [protoc, '-I' + API, '-I' + include,
           '--go_out=' + out, '--go_opt=module=' + MODULE,
           '--go-grpc_out=' + out, '--go-grpc_opt=module=' + MODULE] + protos
    r = subprocess.run(cmd, cwd=API)
    if r.returncode != 0:
        sys.exit('generate.py: protoc failed (%d): %s' % (r.returncode, ' '.join(cmd)))


def comparable(path):
    with open(path) as f:
        return [l for l in f if not l.startswith('// \tprotoc')]


def go_files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith('.go')) \
        if os.path.isdir(folder) else []


def check(fresh):
    committed = os.path.join(HERE, PKG)
    new, old = go_files(fresh), go_files(committed)
    bad = False
    for name in sorted(set(new) | set(old)):
        if name not in old:
            print('missing in clients/go/%s: %s' % (PKG, name))
            bad = True
        elif name not in new:
            print('stale in clients/go/%s (no proto makes it): %s' % (PKG, name))
            bad = True
        else:
            a, b = comparable(os.path.join(committed, name)), comparable(os.path.join(fresh, name))
            if a != b:
                sys.stdout.writelines(difflib.unified_diff(
                    a, b, 'committed/' + name, 'generated/' + name, n=2))
                bad = True
    if bad:
        print('clients/go/%s does not match api/: run clients/go/generate.py and commit'
              % PKG)
        return 1
    print('clients/go/%s matches api/trstctl/v1 (%d files)' % (PKG, len(new)))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--check', action='store_true')
    ap.add_argument('--protoc', default='protoc')
    ap.add_argument('--protobuf-include', default='/usr/include')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix='trstctl-go-gen-') as tmp:
        generate(tmp, args.protoc, args.protobuf_include)
        fresh = os.path.join(tmp, PKG)
        if args.check:
            return check(fresh)
        dest = os.path.join(HERE, PKG)
        os.makedirs(dest, exist_ok=True)
        for name in go_files(dest):
            os.unlink(os.path.join(dest, name))
        for name in go_files(fresh):
            shutil.copyfile(os.path.join(fresh, name), os.path.join(dest, name))
        print('wrote %d files to clients/go/%s' % (len(go_files(fresh)), PKG))
    return 0


if __name__ == '__main__':
    sys.exit(main())
