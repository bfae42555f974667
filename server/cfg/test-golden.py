#!/usr/bin/python3
"""Golden test of `trstctl --check-config` output.

usage: test-golden.py <testdata-dir> <command> [args...]

For each <case>.env in the folder (KEY=VALUE lines, '#' comments), runs the command with
exactly that environment (plus TRSTCTL_CONFIG_FILE pointing at <case>.json when it exists)
and compares stdout with <case>.stdout (exit 0 expected) or stderr with <case>.stderr
(exit 1 expected). GOLDEN_UPDATE=1 rewrites the golden files from the actual output.
"""
import os
import subprocess
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    folder, cmd = sys.argv[1], sys.argv[2:]
    if not os.access(cmd[0], os.X_OK):
        print('SKIP: %s is not built' % cmd[0])
        return 77
    update = os.environ.get('GOLDEN_UPDATE') == '1'
    failures = 0
    cases = sorted(f[:-4] for f in os.listdir(folder) if f.endswith('.env'))
    for case in cases:
        base = os.path.join(folder, case)
        env = {}
        with open(base + '.env') as f:
            for line in f:
                line = line.rstrip('\n')
                if not line or line.startswith('#'):
                    continue
                k, _, v = line.partition('=')
                env[k] = v
        if os.path.exists(base + '.json'):
            env['TRSTCTL_CONFIG_FILE'] = base + '.json'
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=30)
        if os.path.exists(base + '.stderr'):
            want_file, got, want_rc = base + '.stderr', p.stderr, 1
            # a config file path varies with the checkout: compare it relative
            got = got.replace(folder + '/', 'testdata/')
        else:
            want_file, got, want_rc = base + '.stdout', p.stdout, 0
        if update:
            with open(want_file, 'w') as f:
                f.write(got)
            print('updated %s' % want_file)
            continue
        with open(want_file) as f:
            want = f.read()
        if p.returncode != want_rc or got != want:
            failures += 1
            print('FAIL %s: exit %d (want %d)' % (case, p.returncode, want_rc))
            import difflib
            sys.stdout.writelines(difflib.unified_diff(
                want.splitlines(True), got.splitlines(True), want_file, 'actual'))
            if p.stderr and want_rc == 0:
                print('stderr: %s' % p.stderr)
        else:
            print('ok %s' % case)
    if not cases:
        print('FAIL: no cases in %s' % folder)
        return 1
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
