#!/usr/bin/python3
"""libtrstctl as another program uses it: `meson install --destdir D` of the build, then
clients/c/example.c compiled outside the tree with the flags of the installed trstctl.pc
(PKG_CONFIG_PATH at D's pkgconfig folder, PKG_CONFIG_SYSROOT_DIR=D so that its paths
point into D), once against libtrstctl.so and once against libtrstctl.a, and both run
against a served trstctl in the internal TLS mode with the bootstrap token: Health/Check,
CA CreateOwner + GetOwner, and UNAUTHENTICATED without a token; a wrong token fails.
Also checks that every installed header compiles on its own. In a sanitizer build the
consumer is compiled with the same -fsanitize (the installed library is instrumented).

  test_c_install.py --trstctl PATH --build-root DIR --source-root DIR --meson MESON
                    --cc CC [--sanitize none|address,undefined]
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile

import harness
from harness import expect

HEADERS = ('trstctl-client.h', 'trstctl-client-gen.h', 'ca.pb-c.h', 'secrets.pb-c.h',
           'audit.pb-c.h', 'policy.pb-c.h', 'guard.pb-c.h', 'assist.pb-c.h', 'timestamp.pb-c.h',
           'health.pb-c.h')


def run(argv, env=None, timeout=120, quiet=False):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    out = r.stdout + r.stderr
    if not quiet:
        print('  $ %s -> exit %d' % (' '.join(argv), r.returncode), flush=True)
        if out.strip():
            print('    ' + out.strip().replace('\n', '\n    '), flush=True)
    return r.returncode, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    ap.add_argument('--build-root', required=True)
    ap.add_argument('--source-root', required=True)
    ap.add_argument('--meson', required=True)
    ap.add_argument('--cc', required=True)
    ap.add_argument('--sanitize', default='none')
    args = ap.parse_args()
    for tool in ('pkg-config',):
        if subprocess.run(['sh', '-c', 'command -v ' + tool], capture_output=True).returncode:
            harness.skip('%s is not installed (Debian: pkgconf)' % tool)
    san = [] if args.sanitize in ('', 'none') else ['-fsanitize=' + args.sanitize]

    with tempfile.TemporaryDirectory(prefix='trstctl-c-install-') as tmp:
        dest = os.path.join(tmp, 'dest')
        checks = harness.Checks('c-install')
        found = {}

        def install():
            rc, out = run([args.meson, 'install', '-C', args.build_root, '--no-rebuild',
                           '--destdir', dest, '--quiet'], timeout=300)
            expect(rc == 0, 'meson install failed')
            pcs = glob.glob(os.path.join(dest, '**', 'pkgconfig', 'trstctl.pc'),
                            recursive=True)
            expect(len(pcs) == 1, 'want one trstctl.pc under %s, found %s' % (dest, pcs))
            found['pcdir'] = os.path.dirname(pcs[0])
            libdir = os.path.dirname(found['pcdir'])
            for name in ('libtrstctl.so', 'libtrstctl.so.0', 'libtrstctl.a'):
                expect(os.path.exists(os.path.join(libdir, name)), 'no %s in %s' % (name, libdir))
            incs = glob.glob(os.path.join(dest, '**', 'include', 'trstctl'), recursive=True)
            expect(len(incs) == 1, 'want one include/trstctl, found %s' % incs)
            missing = [h for h in HEADERS if not os.path.isfile(os.path.join(incs[0], h))]
            expect(not missing, 'headers not installed: %s' % missing)
            found.update(libdir=libdir, incdir=incs[0])

        if not checks.run('meson install --destdir: library, headers, trstctl.pc', install):
            return checks.finish()
        env = dict(os.environ, PKG_CONFIG_PATH=found['pcdir'], PKG_CONFIG_SYSROOT_DIR=dest)
        env.pop('PKG_CONFIG_LIBDIR', None)
        flags = {}

        def pkgconfig():
            rc, cflags = run(['pkg-config', '--cflags', 'trstctl'], env=env)
            expect(rc == 0, 'pkg-config --cflags trstctl failed')
            rc, libs = run(['pkg-config', '--libs', 'trstctl'], env=env)
            expect(rc == 0, 'pkg-config --libs trstctl failed')
            rc, static = run(['pkg-config', '--static', '--libs', 'trstctl'], env=env, quiet=True)
            expect(rc == 0 and '-lgrpc' in static, 'pkg-config --static names no -lgrpc')
            inc = '-I' + os.path.dirname(found['incdir'])
            expect(inc in cflags.split(), 'cflags do not point into the destdir: %s' % cflags)
            expect('-L' + found['libdir'] in libs.split() and '-ltrstctl' in libs.split(),
                   'libs do not point into the destdir: %s' % libs)
            flags.update(cflags=cflags.split(), libs=libs.split(), static=static.split())

        def headers():
            for h in HEADERS:
                rc, out = run([args.cc, '-fsyntax-only', '-Wall', '-Wextra', '-Werror',
                               '-include', 'trstctl/' + h, '-x', 'c', '/dev/null'] +
                              flags['cflags'], quiet=True)
                expect(rc == 0, 'trstctl/%s does not compile on its own:\n%s' % (h, out))
            print('  %d headers compile on their own' % len(HEADERS))

        example = os.path.join(args.source_root, 'clients', 'c', 'example.c')
        exes = {}

        def build_shared():
            exe = os.path.join(tmp, 'example-shared')
            rc, _ = run([args.cc, '-O2', '-Wall', '-Wextra', '-Werror'] + san + ['-o', exe,
                        example] + flags['cflags'] + flags['libs'] +
                        ['-Wl,-rpath,' + found['libdir']])
            expect(rc == 0, 'compiling against libtrstctl.so failed')
            rc, out = run(['ldd', exe], quiet=True)
            want = os.path.join(found['libdir'], 'libtrstctl.so.0')
            expect(want in out, 'libtrstctl.so.0 does not resolve into the destdir:\n' + out)
            exes['shared'] = exe

        def build_static():
            exe = os.path.join(tmp, 'example-static')
            libs = ['-l:libtrstctl.a' if f == '-ltrstctl' else f for f in flags['static']]
            rc, _ = run([args.cc, '-O2', '-Wall', '-Wextra', '-Werror'] + san + ['-o', exe,
                        example] + flags['cflags'] + libs)
            expect(rc == 0, 'compiling against libtrstctl.a failed')
            rc, out = run(['ldd', exe], quiet=True)
            expect('libtrstctl' not in out, 'the static build still needs libtrstctl.so')
            exes['static'] = exe

        checks.run('pkg-config --cflags --libs trstctl points into the destdir', pkgconfig)
        if flags:
            checks.run('every installed header compiles on its own', headers)
            checks.run('example.c builds against libtrstctl.so', build_shared)
            checks.run('example.c builds against libtrstctl.a', build_static)
        if not exes:
            return checks.finish()

        with harness.Server(args.trstctl,
                            env={'TRSTCTL_SERVER_TLS_MODE': 'internal'}) as server:
            checks.server = server
            token_file, pinned = server.client_files(tmp)
            print('server up at %s (internal TLS)' % server.addr, flush=True)

            def calls(kind):
                rc, out = run([exes[kind], '-a', server.addr, '-c', pinned, '-t', token_file,
                               '-n', 'c-' + kind])
                expect(rc == 0, 'the %s example exited %d' % (kind, rc))
                for name in ('Health/Check', 'CA/CreateOwner', 'CA/GetOwner',
                             'CA/ListOwners without a token'):
                    expect('ok   %s:' % name in out, 'no passing line for %s' % name)

            def wrong_token():
                bad = os.path.join(tmp, 'bad-token')
                with open(bad, 'w') as f:
                    f.write('trst_' + 'x' * 40 + '\n')
                rc, out = run([exes['shared'], '-a', server.addr, '-c', pinned, '-t', bad])
                expect(rc == 1 and 'FAIL CA/CreateOwner: UNAUTHENTICATED' in out,
                       'a wrong token: want CreateOwner UNAUTHENTICATED, exit 1')
                expect('ok   Health/Check:' in out, 'health needs no token')

            for kind in sorted(exes):
                checks.run('%s example: health, CreateOwner/GetOwner, no token' % kind,
                           calls, kind)
            if 'shared' in exes:
                checks.run('wrong token -> UNAUTHENTICATED, exit 1', wrong_token)
        return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
