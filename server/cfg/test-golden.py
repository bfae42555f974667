#!/usr/bin/python3
"""Golden test of `trstctl --check-config` output.

usage: test-golden.py <testdata-dir> <command> [args...]

For each <case>.env in the folder (KEY=VALUE lines, '#' comments), runs the command with
exactly that environment (plus TRSTCTL_CONFIG_FILE pointing at <case>.json when it exists)
and compares stdout with <case>.stdout (exit 0 expected) or stderr with <case>.stderr
(exit 1 expected). GOLDEN_UPDATE=1 rewrites the golden files from the actual output.

With air-gap on, the command resolves endpoint names. So that no case can send a DNS
query or read the machine's /etc/hosts, the whole test re-runs itself inside new network,
mount and UTS namespaces (`unshare -n -m -u`, not even lo up; the host name, a default of
server.tls.sans, is trstctl-golden there) with a private /etc/hosts
(localhost, plus <case>.hosts when it exists) and a private /etc/resolv.conf (nameserver
127.0.0.1, unreachable there). Root only; exit 77 with the reason otherwise.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

NS_MARK = 'TRSTCTL_GOLDEN_IN_NS'
HOSTNAME = 'trstctl-golden'
BASE_HOSTS = '127.0.0.1 localhost\n::1 localhost\n'


def reexec_in_namespaces():
    if os.geteuid() != 0:
        print('SKIP: needs root (a private /etc/hosts in a mount namespace)')
        sys.exit(77)
    if not shutil.which('unshare'):
        print('SKIP: unshare (util-linux) not found')
        sys.exit(77)
    env = dict(os.environ)
    env[NS_MARK] = '1'
    r = subprocess.run(['unshare', '-n', '-m', '-u', '--propagation', 'private',
                        sys.executable] + sys.argv, env=env)
    sys.exit(r.returncode)


def private_files(tmp):
    """Bind-mounts private hosts and resolv.conf files; returns the hosts path."""
    hosts = os.path.join(tmp, 'hosts')
    resolv = os.path.join(tmp, 'resolv.conf')
    with open(hosts, 'w') as f:
        f.write(BASE_HOSTS)
    with open(resolv, 'w') as f:
        f.write('nameserver 127.0.0.1\noptions timeout:1 attempts:1\n')
    for src, dst in ((hosts, '/etc/hosts'), (resolv, '/etc/resolv.conf')):
        if subprocess.run(['mount', '--bind', src, dst]).returncode != 0:
            print('SKIP: cannot bind-mount a private %s' % dst)
            sys.exit(77)
    return hosts


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    folder, cmd = sys.argv[1], sys.argv[2:]
    if not os.access(cmd[0], os.X_OK):
        print('SKIP: %s is not built' % cmd[0])
        return 77
    if os.environ.get(NS_MARK) != '1':
        reexec_in_namespaces()
    # the host name is a default of server.tls.sans: the same on every machine
    socket.sethostname(HOSTNAME)
    tmp = tempfile.mkdtemp(prefix='trstctl-golden-')
    try:
        return run(folder, cmd, private_files(tmp))
    finally:
        for m in ('/etc/resolv.conf', '/etc/hosts'):
            subprocess.run(['umount', '-l', m])
        shutil.rmtree(tmp, ignore_errors=True)


def run(folder, cmd, hosts):
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
        extra = ''
        if os.path.exists(base + '.hosts'):
            with open(base + '.hosts') as f:
                extra = f.read()
        with open(hosts, 'w') as f:  # same inode: the bind mount sees it
            f.write(BASE_HOSTS + extra)
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
