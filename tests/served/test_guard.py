#!/usr/bin/python3
"""Served tests of the air-gap egress guard: `trstctl serve` with the kernel guard.

  test_guard.py --trstctl PATH

Root only. The whole test re-runs itself inside new network and mount namespaces
(`unshare -n -m`, only lo up), mounts a private bpffs for the pins and bind-mounts a
private /etc/hosts (allowed.test, denied.test), so that even a broken guard sends
nothing and no pin or hosts entry outlives the test. Each server gets its own cgroup
(removed at the end, also on failure) and pin folder.

Checks: enforcer ebpf armed at start-up (tripwire counted apart, trips 0); a process in
the server's cgroup gets EPERM for TCP and UDP to 1.1.1.1:443 (trips 2) and ListDenials
shows them (paged); a resolved allow_hosts name is allowed in the kernel and another
name's address is denied; /metrics agrees with GetStatus and with bpftool, and passes
`promtool check metrics`; RunTripwire; `trstctl guard status [--json]`; every thread kept
only CAP_NET_ADMIN; the watchdog ends the server when the guard is detached; an orderly
stop unpins; enforcer ebpf refuses to start without BPF capabilities (capsh), auto falls
back loudly to userspace. Exit 77 (with the reason) when it cannot run here.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import harness
from harness import expect

NS_MARK = 'TRSTCTL_GUARD_TEST_IN_NS'
CGROOT = '/sys/fs/cgroup/unified'
HOSTS = '127.0.0.1 localhost\n::1 localhost\n198.51.100.20 allowed.test\n' \
        '198.51.100.21 denied.test\n'
CAP_NET_ADMIN = 1 << 12


def reexec_in_namespaces():
    """Runs this script again inside fresh net + mount namespaces (private propagation)."""
    if os.geteuid() != 0:
        harness.skip('needs root (network and mount namespaces, cgroups, BPF)')
    if not shutil.which('unshare'):
        harness.skip('unshare (util-linux) not found')
    env = dict(os.environ)
    env[NS_MARK] = '1'
    r = subprocess.run(['unshare', '-n', '-m', '--propagation', 'private',
                        sys.executable] + sys.argv, env=env)
    sys.exit(r.returncode)


def cgroup2_mount():
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, _, right = line.partition(' - ')
            if right.startswith('cgroup2 '):
                return left.split()[4]
    return None


class Env:
    """The namespace furniture: lo, a private bpffs, a private /etc/hosts, cgroups."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='trstctl-guard-test-')
        self.bpffs = os.path.join(self.tmp, 'bpffs')
        self.cgroups = []
        self.mounted = []
        self.cgroot = cgroup2_mount()

    def setup(self):
        if subprocess.run(['ip', 'link', 'set', 'lo', 'up']).returncode != 0:
            harness.skip('cannot bring lo up in the private network namespace')
        if not self.cgroot:
            harness.skip('no cgroup v2 hierarchy mounted')
        os.mkdir(self.bpffs)
        if subprocess.run(['mount', '-t', 'bpf', 'bpf', self.bpffs]).returncode != 0:
            harness.skip('cannot mount a private bpffs')
        self.mounted.append(self.bpffs)
        hosts = os.path.join(self.tmp, 'hosts')
        with open(hosts, 'w') as f:
            f.write(HOSTS)
        if subprocess.run(['mount', '--bind', hosts, '/etc/hosts']).returncode != 0:
            harness.skip('cannot bind-mount a private /etc/hosts')
        self.mounted.append('/etc/hosts')

    def cgroup(self, tag):
        name = 'trstctl-served-%d-%s' % (os.getpid(), tag)
        self.cgroups.append(os.path.join(self.cgroot, name))
        return name

    def cleanup(self):
        for cg in self.cgroups:
            if not os.path.isdir(cg):
                continue
            try:  # anything left inside (a killed server) goes back to the root first
                with open(os.path.join(cg, 'cgroup.procs')) as f:
                    pids = f.read().split()
                for pid in pids:
                    with open(os.path.join(self.cgroot, 'cgroup.procs'), 'w') as f:
                        f.write(pid)
                os.rmdir(cg)
            except OSError as e:
                print('warning: cannot remove cgroup %s: %s' % (cg, e))
        for m in reversed(self.mounted):
            subprocess.run(['umount', '-l', m])
        shutil.rmtree(self.tmp, ignore_errors=True)


def server_env(env, tag, **extra):
    e = {
        'TRSTCTL_SERVER_TLS_MODE': 'disabled',
        'TRSTCTL_DEV_ALLOW_PLAINTEXT': 'true',
        'TRSTCTL_METRICS_ADDR': '127.0.0.1:0',
        'TRSTCTL_AIRGAP_ENABLED': 'true',
        'TRSTCTL_AIRGAP_ENFORCER': 'ebpf',
        'TRSTCTL_AIRGAP_BPF_PIN_PATH': os.path.join(env.bpffs, tag),
        'TRSTCTL_AIRGAP_CGROUP': env.cgroup(tag),
    }
    e.update(extra)
    return e


def metrics_port(srv):
    for line in srv.log().splitlines():
        if '"metrics serving"' in line:
            return int(json.loads(line)['port'])
    raise AssertionError('no "metrics serving" log line')


def http_get(port, path):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open('http://127.0.0.1:%d%s' % (port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith('#'):
            name, value = line.rsplit(' ', 1)
            out[name] = int(value)
    return out


PROBE = r'''
import socket, sys
def attempt(family, kind, host, port):
    s = socket.socket(family, kind)
    s.settimeout(2)
    try:
        s.connect((host, port))
        return 'ok'
    except OSError as e:
        return 'errno%d' % (e.errno or 0)
    finally:
        s.close()
out = []
for spec in sys.argv[1:]:
    kind, host, port = spec.split(':')
    addr = socket.getaddrinfo(host, int(port), socket.AF_INET)[0][4][0]
    out.append(attempt(socket.AF_INET, socket.SOCK_STREAM if kind == 'tcp'
                       else socket.SOCK_DGRAM, addr, int(port)))
print(' '.join(out))
'''


def probe_in_cgroup(env, cgname, *specs):
    """Runs the probe from inside the server's cgroup; returns its results (errno1 = EPERM)."""
    procs = os.path.join(env.cgroot, cgname, 'cgroup.procs')
    script = 'echo $$ > "$0" && py="$1" && code="$2" && shift 2 && exec "$py" -c "$code" "$@"'
    r = subprocess.run(['sh', '-c', script, procs, sys.executable, PROBE] + list(specs),
                       capture_output=True, text=True, timeout=20)
    expect(r.returncode == 0, 'probe failed: %s' % r.stderr.strip())
    return r.stdout.split()


def main():
    if os.environ.get(NS_MARK) != '1':
        reexec_in_namespaces()
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl', required=True)
    args = ap.parse_args()
    harness.need_grpc()
    import grpc
    import guard_pb2
    import guard_pb2_grpc

    for tool in ('ip', 'mount'):
        if not shutil.which(tool):
            harness.skip('%s not found' % tool)
    env = Env()
    try:
        env.setup()
        return run(args, env, grpc, guard_pb2, guard_pb2_grpc)
    finally:
        env.cleanup()


def run(args, env, grpc, guard_pb2, guard_pb2_grpc):
    exe = args.trstctl
    checks = harness.Checks('guard')
    tag = 'a'
    senv = server_env(env, tag, TRSTCTL_AIRGAP_ALLOW_HOSTS='allowed.test')
    cgname = senv['TRSTCTL_AIRGAP_CGROUP']
    pin = senv['TRSTCTL_AIRGAP_BPF_PIN_PATH']
    srv = harness.Server(exe, env=senv)
    try:
        srv.start()
    except harness.ServerError as e:
        log = srv.log()
        srv.stop()
        if 'cannot start the egress guard' in log and (
                'CAP_BPF' in log or 'Operation not supported' in log):
            harness.skip('the eBPF guard cannot load here: %s' % log.splitlines()[-1])
        print(log)
        print('FAIL start: %s' % e)
        return 1
    checks.server = srv
    stub = guard_pb2_grpc.GuardStub(harness.with_token(grpc.insecure_channel(srv.addr),
                                                       srv.bootstrap_token()))
    mport = metrics_port(srv)

    def status():
        return stub.GetStatus(guard_pb2.GetStatusRequest(), timeout=10)

    def armed_at_start():
        s = status()
        expect(s.enabled and s.enforcer == 'ebpf' and s.armed, 'status: %s' % s)
        expect(s.tripwire_hits >= 1, 'tripwire_hits %d' % s.tripwire_hits)
        expect(s.trips == 0, 'trips %d after start-up, want 0' % s.trips)
        expect(s.pin_path == pin, 'pin_path %r, want %r' % (s.pin_path, pin))
        expect(list(s.allow_hosts) == ['allowed.test'], 'allow_hosts %s' % s.allow_hosts)
        expect('"egress guard armed"' in srv.log(), 'no "egress guard armed" log line')

    def capabilities_dropped():
        for tid in os.listdir('/proc/%d/task' % srv.proc.pid):
            with open('/proc/%d/task/%s/status' % (srv.proc.pid, tid)) as f:
                caps = dict(l.split(':\t') for l in f.read().splitlines() if l.startswith('Cap'))
            for k in ('CapEff', 'CapPrm', 'CapBnd'):
                expect(int(caps[k], 16) == CAP_NET_ADMIN,
                       'thread %s %s %s, want only cap_net_admin' % (tid, k, caps[k]))

    def public_denied():
        got = probe_in_cgroup(env, cgname, 'tcp:1.1.1.1:443', 'udp:1.1.1.1:443')
        expect(got == ['errno1', 'errno1'], 'TCP, UDP to 1.1.1.1:443: %s, want EPERM' % got)
        s = status()
        expect(s.trips == 2, 'trips %d, want 2' % s.trips)
        expect(s.trips_by_hook['connect4'] == 2, 'by hook %s' % dict(s.trips_by_hook))

    def denials_listed():
        deadline = time.monotonic() + 5
        while True:
            r = stub.ListDenials(guard_pb2.ListDenialsRequest(), timeout=10)
            if len(r.denials) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        expect(len(r.denials) == 2, '%d denials listed, want 2' % len(r.denials))
        protos = sorted(d.protocol for d in r.denials)
        expect(protos == ['tcp', 'udp'], 'protocols %s' % protos)
        for d in r.denials:
            expect(d.address == '1.1.1.1' and d.port == 443 and d.pid > 0 and
                   d.hook == 'connect4' and d.time.seconds > 0, 'denial %s' % d)
            expect(d.comm in ('python3', ''), 'comm %r' % d.comm)
        p1 = stub.ListDenials(guard_pb2.ListDenialsRequest(page_size=1), timeout=10)
        expect(len(p1.denials) == 1 and p1.next_page_token, 'page 1: %s' % p1)
        p2 = stub.ListDenials(guard_pb2.ListDenialsRequest(
            page_size=1, page_token=p1.next_page_token), timeout=10)
        expect(len(p2.denials) == 1 and not p2.next_page_token, 'page 2: %s' % p2)
        expect(p1.denials[0].protocol != p2.denials[0].protocol, 'pages overlap')
        try:
            stub.ListDenials(guard_pb2.ListDenialsRequest(page_token='x'), timeout=10)
            raise AssertionError('a bad page_token was accepted')
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, 'bad token: %s' % e.code())
        logged = [json.loads(l) for l in srv.log().splitlines() if '"egress denied"' in l]
        expect(len(logged) == 2 and all(l['address'] == '1.1.1.1' and l['port'] == 443
                                        and 'pid' in l and 'comm' in l for l in logged),
               'denial log lines: %s' % logged)

    def allow_hosts_in_kernel():
        got = probe_in_cgroup(env, cgname, 'tcp:allowed.test:443', 'tcp:denied.test:443')
        expect(got[0] != 'errno1', 'allowed.test (198.51.100.20) got EPERM')
        expect(got[1] == 'errno1', 'denied.test (198.51.100.21): %s, want EPERM' % got[1])
        expect(status().trips == 3, 'trips %d, want 3' % status().trips)

    def metrics_agree():
        code, text = http_get(mport, '/metrics')
        expect(code == 200, '/metrics %d' % code)
        m = parse_metrics(text)
        s = status()
        for hook, n in s.trips_by_hook.items():
            key = 'trstctl_egress_guard_trips_total{hook="%s"}' % hook
            expect(m.get(key) == n, '%s = %s, status says %d' % (key, m.get(key), n))
        expect(sum(v for k, v in m.items() if k.startswith('trstctl_egress_guard_trips_total'))
               == s.trips, 'sum of trips')
        expect(m['trstctl_egress_guard_tripwire_hits_total'] == s.tripwire_hits, 'tripwire')
        expect(m['trstctl_egress_guard_armed'] == 1, 'armed gauge')
        expect(m['trstctl_egress_guard_enforcer{enforcer="ebpf"}'] == 1, 'enforcer gauge')
        r = subprocess.run(['bpftool', '-j', 'map', 'dump', 'pinned',
                            os.path.join(pin, 'trips')], capture_output=True, text=True)
        expect(r.returncode == 0, 'bpftool: %s' % r.stderr.strip())
        v = json.loads(r.stdout)[0]['formatted']['value']
        expect(v['total'] == s.trips and v['tripwire'] == s.tripwire_hits,
               'bpftool %s, status trips %d tripwire %d' % (v, s.trips, s.tripwire_hits))
        if shutil.which('promtool'):
            r = subprocess.run(['promtool', 'check', 'metrics'], input=text,
                               capture_output=True, text=True)
            expect(r.returncode == 0, 'promtool: %s' % (r.stdout + r.stderr).strip())
        expect(http_get(mport, '/healthz')[0] == 200, '/healthz')
        expect(http_get(mport, '/readyz') == (200, 'ready\n'), '/readyz')

    def tripwire_on_demand():
        before = status().tripwire_hits
        r = stub.RunTripwire(guard_pb2.RunTripwireRequest(), timeout=10)
        expect(r.armed and r.detail, 'RunTripwire: %s' % r)
        s = status()
        expect(s.tripwire_hits == before + 1 and s.trips == 3, 'after: %s' % s)

    def cli_status():
        cenv = dict(srv.env)
        cenv['TRSTCTL_SERVER_ADDR'] = srv.addr
        code, out = harness.run_cmd([exe, 'guard', 'status', '--json'], env=cenv)
        expect(code == 0, 'guard status --json: %d %s' % (code, out))
        j = json.loads(out)
        s = status()
        # proto3 JSON: lowerCamelCase names, 64-bit counters as strings
        expect(j['enforcer'] == 'ebpf' and j['armed'] is True and j['trips'] == str(s.trips) and
               j['tripsByHook']['connect4'] == str(s.trips_by_hook['connect4']) and
               j['pinPath'] == pin, 'json: %s' % j)
        code, out = harness.run_cmd([exe, 'guard', 'status'], env=cenv)
        expect(code == 0 and re.search(r'^enforcer:\s+ebpf$', out, re.M) and
               re.search(r'^armed:\s+true$', out, re.M), 'human: %s' % out)
        code, out = harness.run_cmd([exe, 'guard', 'bogus'], env=cenv)
        expect(code == 2 and 'usage' in out, 'bad sub-command: %d %s' % (code, out))

    def watchdog_ends_server():
        r = subprocess.run(['bpftool', 'link', 'detach', 'pinned',
                            os.path.join(pin, 'link_connect4')], capture_output=True, text=True)
        expect(r.returncode == 0, 'bpftool link detach: %s' % r.stderr.strip())
        code = srv.wait(10)
        expect(code == 1, 'server exit %s after the guard was detached, want 1' % code)
        expect('EGRESS GUARD LOST' in srv.log(), 'no "EGRESS GUARD LOST" log line')

    try:
        checks.run('ebpf armed at start-up, tripwire counted apart', armed_at_start)
        checks.run('capabilities dropped in every thread', capabilities_dropped)
        checks.run('public TCP and UDP from the cgroup -> EPERM, counted', public_denied)
        checks.run('ListDenials and the log show them', denials_listed)
        checks.run('allow_hosts name allowed in the kernel, another denied',
                   allow_hosts_in_kernel)
        checks.run('/metrics agrees with GetStatus, bpftool, promtool', metrics_agree)
        checks.run('RunTripwire', tripwire_on_demand)
        checks.run('trstctl guard status [--json]', cli_status)
        checks.run('watchdog: a detached guard ends the server', watchdog_ends_server)
    finally:
        srv.stop()
        shutil.rmtree(srv.state_dir, ignore_errors=True)

    checks.server = None
    checks.run('orderly stop unpins', orderly_stop, exe, env)
    checks.run('enforcer ebpf refuses to start without BPF capabilities', no_caps_ebpf, exe, env)
    checks.run('enforcer auto falls back loudly to userspace', no_caps_auto, exe, env,
               guard_pb2, guard_pb2_grpc, grpc)
    return checks.finish()


def orderly_stop(exe, env):
    senv = server_env(env, 'b')
    pin = senv['TRSTCTL_AIRGAP_BPF_PIN_PATH']
    with harness.Server(exe, env=senv) as srv:
        expect(os.path.exists(os.path.join(pin, 'trips')), 'trips not pinned')
        code = srv.stop()
    expect(code == 0, 'exit %s' % code)
    expect(not os.path.exists(pin), 'pin folder %s left after an orderly stop' % pin)


NO_BPF_CAPS = '--drop=cap_bpf,cap_sys_admin,cap_net_admin,cap_perfmon'


def capsh_cmd(exe):
    if not shutil.which('capsh'):
        raise AssertionError('capsh (libcap2-bin) not found')
    return ['capsh', NO_BPF_CAPS, '--', '-c', 'exec "$0" serve', exe]


def no_caps_ebpf(exe, env):
    senv = harness.Server(exe, env=server_env(env, 'c'))  # only for its environment
    # Never reached: the guard refuses to start first.
    senv.env['TRSTCTL_POSTGRES_DSN'] = 'host=/nonexistent dbname=trstctl'
    try:
        r = subprocess.run(capsh_cmd(exe), env=senv.env, capture_output=True, text=True,
                           timeout=30)
    finally:
        shutil.rmtree(senv.state_dir, ignore_errors=True)
    expect(r.returncode == 1, 'exit %d, want 1: %s' % (r.returncode, r.stderr[-400:]))
    expect('cannot start the egress guard' in r.stderr and 'CAP_BPF' in r.stderr,
           'message: %s' % r.stderr[-400:])
    expect('"serving"' not in r.stderr, 'it served anyway')


def no_caps_auto(exe, env, guard_pb2, guard_pb2_grpc, grpc):
    senv = server_env(env, 'd', TRSTCTL_AIRGAP_ENFORCER='auto')
    srv = harness.Server(exe, env=senv)
    srv.env['TRSTCTL_POSTGRES_DSN'] = srv.start_postgres()
    srv.proc = subprocess.Popen(capsh_cmd(exe), env=srv.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        srv._reader = harness.threading.Thread(target=srv._read, daemon=True)
        srv._reader.start()
        deadline = time.monotonic() + 20
        while srv.port is None and time.monotonic() < deadline and srv.proc.poll() is None:
            time.sleep(0.05)
        expect(srv.port is not None, 'did not serve: %s' % srv.log_tail())
        warn = [l for l in srv.log().splitlines() if 'EGRESS GUARD DEGRADED' in l]
        expect(warn and json.loads(warn[0])['level'] == 'warn', 'no loud warning line')
        stub = guard_pb2_grpc.GuardStub(harness.with_token(grpc.insecure_channel(srv.addr),
                                                           srv.bootstrap_token()))
        s = stub.GetStatus(guard_pb2.GetStatusRequest(), timeout=10)
        expect(s.enabled and s.enforcer == 'userspace' and not s.armed, 'status %s' % s)
        t = stub.RunTripwire(guard_pb2.RunTripwireRequest(), timeout=10)
        expect(not t.armed and 'userspace' in t.detail, 'tripwire %s' % t)
        m = parse_metrics(http_get(metrics_port(srv), '/metrics')[1])
        expect(m['trstctl_egress_guard_armed'] == 0 and
               m['trstctl_egress_guard_enforcer{enforcer="userspace"}'] == 1, 'metrics %s' % m)
    finally:
        srv.stop()
        shutil.rmtree(srv.state_dir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
