#!/usr/bin/python3
"""The pod layout of the egress guard on the real kernel: `trstctl guard attach` as root,
then `trstctl serve` with TRSTCTL_AIRGAP_ENFORCER=pinned as uid 65532 with no capability.

  test_guard_pod.py --trstctl PATH

Root only. The whole test re-runs itself inside new network and mount namespaces
(`unshare -n -m`, only lo up) and mounts a private bpffs, so that even a broken guard sends
nothing and no pin outlives the test. The cgroup is fresh and removed at the end, also on
failure; the pins go with the private bpffs (and are removed one by one before that).

Checks: attach without BPF rights exits 1 with the reason; attach into a missing cgroup
exits 1; attach finds the pod cgroup ("pod<uid>") by --pod-uid under --cgroup-root, pins links (root's, 0600) and the counters and rule maps (65532's, 0600)
and leaves the five programs attached; a pinned server without a pin refuses to start;
the pinned server, as 65532 with no capability, inside the cgroup, is ready, armed, trips
0, with every capability set empty; a public connect from the cgroup is refused and the
server's /metrics counts it; an allow_hosts name that moved after attach (private
/etc/hosts) is allowed at its new address and refused at its old one, so the server
replaced the rules through the pinned rule maps without capabilities; removing a link pin makes /readyz answer 503 naming the guard
and logs the missing pin. Exit 77 (with the reason) when it cannot run here.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import harness
from harness import expect
from test_guard import cgroup2_mount, http_get, metrics_port, parse_metrics

NS_MARK = 'TRSTCTL_GUARD_POD_TEST_IN_NS'
UID = 65532
SETPRIV = ['setpriv', '--reuid', str(UID), '--regid', str(UID), '--clear-groups',
           '--inh-caps=-all', '--bounding-set=-all']
LINKS = ['link_connect4', 'link_connect6', 'link_sendmsg4', 'link_sendmsg6',
         'link_sock_create']
MAPS = ['trips', 'rules4_a', 'rules4_b', 'rules6_a', 'rules6_b', 'rules_active']


def reexec_in_namespaces():
    if os.geteuid() != 0:
        harness.skip('needs root (network and mount namespaces, cgroups, BPF)')
    for tool in ('unshare', 'setpriv', 'ip', 'mount'):
        if not shutil.which(tool):
            harness.skip('%s not found' % tool)
    env = dict(os.environ)
    env[NS_MARK] = '1'
    r = subprocess.run(['unshare', '-n', '-m', '--propagation', 'private',
                        sys.executable] + sys.argv, env=env)
    sys.exit(r.returncode)


def metrics(port):
    code, text = http_get(port, '/metrics')
    expect(code == 200, '/metrics %d' % code)
    return parse_metrics(text)


PROBE = r'''
import socket, sys
out = []
for host in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((socket.gethostbyname(host), 443))
        out.append('ok')
    except OSError as e:
        out.append('errno%d' % (e.errno or 0))
    s.close()
print(' '.join(out))
'''
HOSTS = '127.0.0.1 localhost\n198.51.100.20 allowed.test\n'


def main():
    if os.environ.get(NS_MARK) != '1':
        reexec_in_namespaces()
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    if not os.access(args.trstctl, os.X_OK):
        harness.skip('trstctl binary not found: %r' % args.trstctl)
    cgroot = cgroup2_mount()
    if not cgroot:
        harness.skip('no cgroup v2 hierarchy mounted')
    if subprocess.run(['ip', 'link', 'set', 'lo', 'up']).returncode != 0:
        harness.skip('cannot bring lo up in the private network namespace')
    tmp = tempfile.mkdtemp(prefix='trstctl-pod-test-')
    os.chmod(tmp, 0o755)
    bpffs = os.path.join(tmp, 'bpffs')
    # A Kubernetes-like layout: the pod cgroup "pod<uid>" inside a parent; attach finds it
    # by the uid (--pod-uid), as the chart's init container does.
    parent = os.path.join(cgroot, 'trstctl-podtest-%d' % os.getpid())
    pod_uid = str(uuid.uuid4())
    cg = os.path.join(parent, 'pod' + pod_uid)
    mounted = False
    try:
        os.mkdir(bpffs)
        if subprocess.run(['mount', '-t', 'bpf', 'bpf', bpffs]).returncode != 0:
            harness.skip('cannot mount a private bpffs')
        mounted = True
        hosts = os.path.join(tmp, 'hosts')
        with open(hosts, 'w') as f:
            f.write(HOSTS)
        os.chmod(hosts, 0o644)
        if subprocess.run(['mount', '--bind', hosts, '/etc/hosts']).returncode != 0:
            harness.skip('cannot bind-mount a private /etc/hosts')
        os.mkdir(parent)
        os.mkdir(cg)
        return run(args.trstctl, cgroot, cg, pod_uid, os.path.join(bpffs, 'pod'), hosts)
    finally:
        pin = os.path.join(bpffs, 'pod')
        if os.path.isdir(pin):
            for name in os.listdir(pin):
                os.unlink(os.path.join(pin, name))
            os.rmdir(pin)
        for d in (cg, parent):
            if not os.path.isdir(d):
                continue
            try:  # anything left inside goes back to the root first
                with open(os.path.join(d, 'cgroup.procs')) as f:
                    for pid in f.read().split():
                        with open(os.path.join(cgroot, 'cgroup.procs'), 'w') as r:
                            r.write(pid)
                os.rmdir(d)
            except OSError as e:
                print('warning: cannot remove cgroup %s: %s' % (d, e))
        if mounted:
            subprocess.run(['umount', '-l', '/etc/hosts'])
            subprocess.run(['umount', '-l', bpffs])
        shutil.rmtree(tmp, ignore_errors=True)


def run(exe, cgroot, cg, pod_uid, pin, hosts):
    checks = harness.Checks('guard-pod')
    base = {k: v for k, v in os.environ.items() if not k.startswith('TRSTCTL_')}
    base.update({
        'TRSTCTL_LOG_FORMAT': 'json',
        'TRSTCTL_AIRGAP_ENABLED': 'true',
        'TRSTCTL_AIRGAP_ALLOW_HOSTS': 'allowed.test',
        'TRSTCTL_AIRGAP_BPF_PIN_PATH': pin,
        'TRSTCTL_AIRGAP_CGROUP': os.path.relpath(cg, cgroot),
        'TRSTCTL_POSTGRES_DSN': 'host=/nonexistent dbname=trstctl user=postgres',
    })

    def attach_needs_rights():
        r = subprocess.run(SETPRIV + [exe, 'guard', 'attach', '--owner', str(UID)],
                           env=base, capture_output=True, text=True, timeout=30)
        expect(r.returncode == 1 and 'CAP_BPF' in r.stderr,
               'attach without rights: exit %d %r' % (r.returncode, r.stderr[-300:]))
        expect(not os.path.exists(os.path.join(pin, 'trips')), 'something got pinned')

    def attach_missing_cgroup():
        r = subprocess.run([exe, 'guard', 'attach', '--cgroup', cg + '-missing'], env=base,
                           capture_output=True, text=True, timeout=30)
        expect(r.returncode == 1 and 'does not exist' in r.stderr,
               'attach into a missing cgroup: exit %d %r' % (r.returncode, r.stderr[-300:]))

    def attach():
        r = subprocess.run([exe, 'guard', 'attach', '--pod-uid', pod_uid, '--cgroup-root',
                            cgroot, '--owner', str(UID)], env=base,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0 and ('CAP_BPF' in r.stderr or 'not supported' in r.stderr):
            harness.skip('the eBPF guard cannot load here: %s' % r.stderr.strip()[-300:])
        expect(r.returncode == 0, 'attach: exit %d %s' % (r.returncode, r.stderr[-800:]))
        expect('"egress guard tripwire refused"' in r.stderr, 'attach ran no tripwire')
        for name in LINKS:
            st = os.stat(os.path.join(pin, name))
            expect(st.st_uid == 0 and st.st_mode & 0o777 == 0o600,
                   '%s: uid %d mode %o' % (name, st.st_uid, st.st_mode & 0o777))
        for name in MAPS:
            st = os.stat(os.path.join(pin, name))
            expect(st.st_uid == UID and st.st_mode & 0o777 == 0o600,
                   '%s: uid %d mode %o' % (name, st.st_uid, st.st_mode & 0o777))
        if shutil.which('bpftool'):
            out = subprocess.run(['bpftool', 'cgroup', 'show', cg], capture_output=True,
                                 text=True).stdout
            for prog in ('guard_connect4', 'guard_connect6', 'guard_sendmsg4',
                         'guard_sendmsg6', 'guard_sock_create'):
                expect(prog in out, '%s not attached to %s: %s' % (prog, cg, out))

    if not checks.run('attach without BPF rights exits 1 with the reason',
                      attach_needs_rights):
        return checks.finish()
    checks.run('attach into a missing cgroup exits 1', attach_missing_cgroup)
    if not checks.run('attach finds the pod cgroup by uid, pins links (root) and counters '
                      'and rule maps (65532)', attach):
        return checks.finish()

    senv = dict(base)
    del senv['TRSTCTL_POSTGRES_DSN']
    senv.update({
        'TRSTCTL_SERVER_TLS_MODE': 'disabled',
        'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true',
        'TRSTCTL_AIRGAP_ENFORCER': 'pinned',
    })
    procs = os.path.join(cg, 'cgroup.procs')
    # Into the guarded cgroup first (as root), then drop to 65532 with no capability.
    wrapper = ['sh', '-c', 'echo $$ > "$0" && exec "$@"', procs] + SETPRIV

    def prepare(srv):
        os.chmod(srv.state_dir, 0o755)
        srv.pg_client = '%d:%d' % (UID, UID)  # its PostgreSQL admits 65532, not everyone
        state = srv.env['TRSTCTL_STATE_DIR']
        os.makedirs(state, mode=0o700, exist_ok=True)
        os.chown(state, UID, UID)

    def refused_without_pin():
        env = dict(senv, TRSTCTL_AIRGAP_BPF_PIN_PATH=pin + '-missing')
        srv = harness.Server(exe, env=env, wrapper=wrapper, start_timeout=30)
        prepare(srv)
        try:
            srv.start()
            raise AssertionError('a pinned server without pins started')
        except harness.ServerError:
            pass
        finally:
            srv.stop()
            shutil.rmtree(srv.state_dir, ignore_errors=True)
        expect('no pinned guard at' in srv.log(), 'no reason in the log: %s' % srv.log_tail(5))

    checks.run('a pinned server refuses to start without the pins', refused_without_pin)

    # The name moves after attach: the pinned server must put the new address into the
    # pinned rule maps itself (as 65532, no capability) and drop the old one.
    with open(hosts, 'w') as f:
        f.write(HOSTS.replace('198.51.100.20', '198.51.100.30'))

    srv = harness.Server(exe, env=senv, wrapper=wrapper, start_timeout=30)
    prepare(srv)
    checks.server = srv
    try:
        try:
            srv.start()
        except harness.ServerError as e:
            print(srv.log_tail(30))
            print('FAIL start: %s' % e)
            return 1
        mport = metrics_port(srv)

        def ready_unprivileged():
            deadline = time.monotonic() + 10  # "serving" is logged just before ready
            while True:
                code, body = http_get(mport, '/readyz')
                if code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            expect(code == 200, '/readyz %d %r' % (code, body))
            with open('/proc/%d/status' % srv.proc.pid) as f:
                st = dict(l.split(':\t', 1) for l in f.read().splitlines() if ':\t' in l)
            expect(st['Uid'].split()[0] == str(UID), 'Uid %s' % st['Uid'])
            for k in ('CapEff', 'CapPrm', 'CapInh', 'CapBnd', 'CapAmb'):
                expect(int(st[k], 16) == 0, '%s %s, want none' % (k, st[k]))
            with open('/proc/%d/cgroup' % srv.proc.pid) as f:
                expect(f.read().strip().endswith(os.path.basename(cg)), 'not in the cgroup')
            expect('"enforcer":"pinned"' in srv.log().replace(' ', ''),
                   'no pinned "egress guard armed" line')

        def armed_trips_zero():
            m = metrics(mport)
            expect(m['trstctl_egress_guard_armed'] == 1, 'armed %s' % m.get(
                'trstctl_egress_guard_armed'))
            trips = sum(v for k, v in m.items()
                        if k.startswith('trstctl_egress_guard_trips_total'))
            expect(trips == 0, 'trips %d, want 0' % trips)
            expect(m['trstctl_egress_guard_tripwire_hits_total'] >= 2,
                   'tripwire hits %d (attach + serve)'
                   % m['trstctl_egress_guard_tripwire_hits_total'])
            expect(m['trstctl_egress_guard_enforcer{enforcer="ebpf"}'] == 1, 'enforcer')

        def public_denied_counted():
            r = subprocess.run(['sh', '-c', 'echo $$ > "$0" && exec "$@"', procs] + SETPRIV +
                               [sys.executable, '-c', PROBE, '1.1.1.1', 'allowed.test',
                                '198.51.100.20'],
                               capture_output=True, text=True, timeout=20)
            # allowed.test (now 198.51.100.30, loaded by the server through the pins) is not
            # refused by the guard: only lo is up, so ENETUNREACH (101), not EPERM (1); its
            # old address, which attach had loaded, is refused again.
            expect(r.stdout.split() == ['errno1', 'errno101', 'errno1'],
                   'TCP to 1.1.1.1, allowed.test (.30), 198.51.100.20: %r %r (want EPERM, '
                   'ENETUNREACH, EPERM)' % (r.stdout, r.stderr))
            m = metrics(mport)
            expect(m['trstctl_egress_guard_trips_total{hook="connect4"}'] == 2,
                   'connect4 trips %d, want 2'
                   % m['trstctl_egress_guard_trips_total{hook="connect4"}'])

        def pin_removed_not_ready():
            os.unlink(os.path.join(pin, 'link_sock_create'))
            code, body = http_get(mport, '/readyz')
            expect(code == 503 and 'guard' in body, '/readyz %d %r, want 503 guard'
                   % (code, body))
            deadline = time.monotonic() + 5
            while 'link_sock_create missing' not in srv.log():
                expect(time.monotonic() < deadline, 'the missing pin is not logged')
                time.sleep(0.05)

        checks.run('pinned server as 65532 without capabilities is ready', ready_unprivileged)
        checks.run('armed from the pins, trips 0', armed_trips_zero)
        checks.run('a public connect from the cgroup is refused and counted; the server '
                   'loaded the moved allow_hosts name into the pinned rules',
                   public_denied_counted)
        checks.run('a removed pin makes /readyz 503 naming the guard', pin_removed_not_ready)
    finally:
        srv.stop()
        shutil.rmtree(srv.state_dir, ignore_errors=True)
    return checks.finish()


if __name__ == '__main__':
    sys.exit(main())
