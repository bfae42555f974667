"""The Helm chart rendered by the real helm (issue 13, part 5).

  helm lint --strict (default values and the air-gap overlay, with the required inputs);
  helm template of the documented air-gap install renders, and:
    - the NetworkPolicy's PostgreSQL/NATS egress rule holds exactly the overlay's ipBlock
      CIDRs, and no rule anywhere allows 0.0.0.0/0;
    - the ConfigMap sets TRSTCTL_AIRGAP_ENABLED, _ALLOW_PRIVATE, _ALLOW_CIDRS and
      TRSTCTL_TELEMETRY_ENABLED to the documented values;
    - the Service's scrape annotation names the metrics port, and the NetworkPolicy admits
      that port from the monitoring namespace;
    - the guard pins its maps per pod on the node's bpffs (the pod uid in the pin path):
      the init container guard-attach holds BPF, NET_ADMIN, PERFMON, CHOWN and runs
      `trstctl guard attach`; the trstctl container runs as 65532 with drop ALL and nothing
      added, enforcer pinned on its own pin folder, ready by /readyz; guard.attach=server
      keeps the older layout;
    - internal TLS: TRSTCTL_SERVER_TLS_SANS holds the Service's names (<svc>, <svc>.<ns>,
      <svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local, then tls.extraSANs) for any release and
      namespace; tls.mode=file sets none;
    - the rendered environment passes `trstctl --check-config` (with pg.internal and
      nats.internal resolving to private addresses in a private /etc/hosts) and prints the
      air_gap lines and the Service names as server.tls.sans;
  values that must fail (no KEK choice; telemetry with the air gap) fail at render with
  the documented message.

Exits 77 when helm is missing (scripts/install-deps fetches it) or, after every other check
passed, when the check-config step cannot run without root (the private /etc/hosts needs a
mount namespace).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chart  # noqa: E402

AIRGAP = os.path.join(chart.CHART, 'values-airgap.yaml')
# The documented install is release trstctl in namespace trstctl: Service trstctl.
WANT_SANS = ('trstctl,trstctl.trstctl,trstctl.trstctl.svc,'
             'trstctl.trstctl.svc.cluster.local')
POD = {'metadata.uid': 'pod-uid-1'}  # the fieldRef values of the rendered pod
PRIVATE_HOSTS = {'pg.internal': '10.20.0.5', 'nats.internal': '10.20.0.6'}
WANT_CONFIG = {
    'TRSTCTL_AIRGAP_ENABLED': 'true',
    'TRSTCTL_AIRGAP_ALLOW_PRIVATE': 'true',
    'TRSTCTL_AIRGAP_ALLOW_CIDRS': '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16',
    'TRSTCTL_TELEMETRY_ENABLED': 'false',
}


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, ok, what, detail=''):
        print('%s: %s%s' % ('ok' if ok else 'FAIL', what, (' (%s)' % detail) if detail and not ok else ''))
        if not ok:
            self.failed += 1
        return ok


def egress_checks(c, policy):
    rules = policy['spec']['egress']
    db = [r for r in rules if {p['port'] for p in r.get('ports', [])} == {5432, 4222}]
    c.check(len(db) == 1, 'one egress rule for PostgreSQL (5432) and NATS (4222)', rules)
    if db:
        peers = db[0].get('to', [])
        cidrs = [p.get('ipBlock', {}).get('cidr') for p in peers]
        c.check(cidrs == chart.PRIVATE_CIDRS and all(list(p) == ['ipBlock'] for p in peers),
                'the PostgreSQL/NATS rule holds only the ipBlock CIDRs of the values', peers)
    text = repr(policy)
    c.check('0.0.0.0/0' not in text and '::/0' not in text, 'no rule allows 0.0.0.0/0 or ::/0')


def metrics_checks(c, docs, namespace='monitoring'):
    svc = chart.find(docs, 'Service')
    ann = svc['metadata'].get('annotations', {})
    port = int(ann.get('prometheus.io/port', 0))
    c.check(ann.get('prometheus.io/scrape') == 'true' and port == 9464,
            'the Service asks Prometheus to scrape port 9464', ann)
    ingress = chart.find(docs, 'NetworkPolicy')['spec'].get('ingress', [])
    ok = any({p['port'] for p in r.get('ports', [])} == {port} and
             {'namespaceSelector': {'matchLabels': {'kubernetes.io/metadata.name': namespace}}}
             in r.get('from', []) for r in ingress)
    c.check(ok, 'the NetworkPolicy admits the scraped port from namespace %s' % namespace, ingress)


def env_of(ctr, field_values):
    """The literal and fieldRef env entries of one container, $(VAR) expanded."""
    env = {}
    for e in ctr.get('env', []):
        if 'value' in e:
            env[e['name']] = re.sub(r'\$\(([A-Za-z_0-9]+)\)',
                                    lambda m: env.get(m.group(1), m.group(0)), str(e['value']))
        elif 'fieldRef' in e.get('valueFrom', {}):
            env[e['name']] = field_values.get(e['valueFrom']['fieldRef']['fieldPath'], '')
    return env


def pin_checks(c, docs):
    """attach: init (the default): the init container holds the BPF rights and pins per pod;
    the trstctl container runs as 65532, drops every capability, adds none, runs enforcer
    pinned on its own pin folder only, and is ready only by /readyz."""
    pod = chart.find(docs, 'Deployment')['spec']['template']['spec']
    inits = pod.get('initContainers', [])
    c.check([i['name'] for i in inits] == ['guard-attach'],
            'air gap on: an init container guard-attach', [i['name'] for i in inits])
    if not inits:
        return
    init = inits[0]
    ienv = env_of(init, {'metadata.uid': 'pod-uid-1'})
    c.check(ienv.get('TRSTCTL_AIRGAP_BPF_PIN_PATH') == '/sys/fs/bpf/trstctl/pod-uid-1',
            'the init container pins per pod (/sys/fs/bpf/trstctl/<pod uid>)',
            ienv.get('TRSTCTL_AIRGAP_BPF_PIN_PATH'))
    cmd = init.get('command', [])
    c.check(cmd[1:3] == ['guard', 'attach'] and '--pod-uid' in cmd and
            cmd[cmd.index('--owner') + 1].split(':')[0] == '65532',
            'the init container runs trstctl guard attach --pod-uid ... --owner 65532', cmd)
    isc = init['securityContext']
    c.check(isc['capabilities']['drop'] == ['ALL'] and
            sorted(isc['capabilities']['add']) == ['BPF', 'CHOWN', 'NET_ADMIN', 'PERFMON'] and
            isc.get('allowPrivilegeEscalation') is False,
            'the init container drops ALL and adds only BPF, NET_ADMIN, PERFMON, CHOWN', isc)
    mounts = {m['name']: m for m in init['volumeMounts']}
    c.check(mounts.get('cgroup', {}).get('readOnly') is True,
            "the init container sees the node's cgroup2 hierarchy read-only", mounts)
    vols = {v['name']: v for v in pod['volumes'] if 'hostPath' in v}
    c.check(vols.get('bpffs', {}).get('hostPath', {}).get('path') == '/sys/fs/bpf',
            "the pin folder is the node's bpffs (hostPath /sys/fs/bpf)", vols)

    ctr = [x for x in pod['containers'] if x['name'] == 'trstctl'][0]
    env = chart.container_env(docs, {'metadata.uid': 'pod-uid-1'})
    c.check(env.get('TRSTCTL_AIRGAP_ENFORCER') == 'pinned',
            'the trstctl container runs enforcer pinned', env.get('TRSTCTL_AIRGAP_ENFORCER'))
    sc = ctr['securityContext']
    uid = sc.get('runAsUser', pod.get('securityContext', {}).get('runAsUser'))
    c.check(uid == 65532 and sc.get('runAsNonRoot') is True and
            sc['capabilities'].get('drop') == ['ALL'] and not sc['capabilities'].get('add'),
            'the trstctl container runs as 65532, drops ALL, adds nothing', sc)
    bm = [m for m in ctr['volumeMounts'] if m['name'] == 'bpffs']
    c.check(len(bm) == 1 and bm[0].get('subPathExpr') == 'trstctl/$(POD_UID)' and
            bm[0]['mountPath'] == env.get('TRSTCTL_AIRGAP_BPF_PIN_PATH'),
            'the trstctl container mounts only its own pin folder, where its pin path is', bm)
    rp = ctr.get('readinessProbe', {}).get('httpGet', {})
    c.check(rp.get('path') == '/readyz' and rp.get('port') == 'metrics',
            'readiness is /readyz (503 while a pin is missing)', ctr.get('readinessProbe'))


def server_attach_checks(c):
    """guard.attach=server keeps the older layout: no init container, root with the list."""
    rc, out, err = chart.template(values=[AIRGAP],
                                  sets=chart.DOCUMENTED_SETS + ['guard.attach=server'])
    if not c.check(rc == 0, 'helm template renders with guard.attach=server', err[-400:]):
        return
    docs = chart.documents(out)
    pod = chart.find(docs, 'Deployment')['spec']['template']['spec']
    ctr = [x for x in pod['containers'] if x['name'] == 'trstctl'][0]
    c.check(not pod.get('initContainers') and
            ctr['securityContext']['capabilities'].get('add') == ['BPF', 'NET_ADMIN', 'PERFMON'],
            'guard.attach=server: no init container, the server holds BPF, NET_ADMIN, PERFMON',
            ctr['securityContext'])
    env = chart.container_env(docs, {'metadata.uid': 'pod-uid-1'})
    c.check(env.get('TRSTCTL_AIRGAP_ENFORCER') == 'ebpf' and
            env.get('TRSTCTL_AIRGAP_BPF_PIN_PATH') == '/sys/fs/bpf/trstctl/pod-uid-1',
            'guard.attach=server: enforcer ebpf, pinned per pod', env)
    rc, _, err = chart.template(values=[AIRGAP],
                                sets=chart.DOCUMENTED_SETS + ['guard.attach=sidecar'])
    c.check(rc != 0 and 'guard.attach must be init or server' in err,
            'render fails for guard.attach=sidecar', err[-300:])


def tls_checks(c, docs):
    """tls.mode internal (the default): the server certificate carries the Service's names,
    <svc>, <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.cluster.local (then tls.extraSANs),
    for whatever release and namespace; file mode sets none."""
    env = chart.container_env(docs, POD)
    c.check(env.get('TRSTCTL_SERVER_TLS_MODE') == 'internal' and
            env.get('TRSTCTL_SERVER_TLS_SANS') == WANT_SANS,
            'internal TLS: TRSTCTL_SERVER_TLS_SANS holds the Service names (%s)' % WANT_SANS,
            env.get('TRSTCTL_SERVER_TLS_SANS'))
    rc, out, err = chart.template(values=[AIRGAP], release='prod', namespace='security',
                                  sets=chart.DOCUMENTED_SETS +
                                  ['tls.extraSANs={trstctl.example.com}'])
    if c.check(rc == 0, 'helm template renders release prod in namespace security', err[-400:]):
        got = chart.container_env(chart.documents(out), POD).get('TRSTCTL_SERVER_TLS_SANS')
        want = ('prod-trstctl,prod-trstctl.security,prod-trstctl.security.svc,'
                'prod-trstctl.security.svc.cluster.local,trstctl.example.com')
        c.check(got == want, 'the SANs follow the release, the namespace and tls.extraSANs',
                got)
    rc, out, err = chart.template(values=[AIRGAP], sets=chart.DOCUMENTED_SETS + [
        'tls.mode=file', 'tls.existingSecret=trstctl-tls'])
    if c.check(rc == 0, 'helm template renders tls.mode=file', err[-400:]):
        env = chart.container_env(chart.documents(out), POD)
        c.check('TRSTCTL_SERVER_TLS_SANS' not in env,
                'tls.mode=file: no TRSTCTL_SERVER_TLS_SANS (the operator\'s certificate)',
                env.get('TRSTCTL_SERVER_TLS_SANS'))


def run_with_hosts(hosts, argv, env):
    """Runs argv in a private mount namespace whose /etc/hosts maps hosts (name -> address)."""
    with tempfile.NamedTemporaryFile('w', suffix='.hosts', delete=False) as f:
        f.write('127.0.0.1 localhost\n')
        for name, addr in hosts.items():
            f.write('%s %s\n' % (addr, name))
    try:
        return subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c',
                               'mount --bind "$0" /etc/hosts && exec "$@"', f.name] + argv,
                              env=env, capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(f.name)


def check_config(c, docs, trstctl):
    """Returns False when the check could not run (no root)."""
    if os.geteuid() != 0:
        print('skip: --check-config with a private /etc/hosts needs root (mount namespace)')
        return False
    with tempfile.TemporaryDirectory() as tmp:
        kek = os.path.join(tmp, 'kek.bin')
        with open(kek, 'wb') as f:
            f.write(os.urandom(32))
        os.chmod(kek, 0o600)
        env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin')}
        env.update(chart.container_env(docs, {'metadata.uid': 'pod-uid-1'}))
        # The KEK Secret volume of the pod stands at a temp path here.
        env['TRSTCTL_SECRETS_KEK_FILE'] = kek
        env['TRSTCTL_STATE_DIR'] = os.path.join(tmp, 'data')
        r = run_with_hosts(PRIVATE_HOSTS, [trstctl, '--check-config'], env)
    out = r.stdout + r.stderr
    c.check(r.returncode == 0, 'the rendered environment passes trstctl --check-config',
            out.strip()[-600:])
    c.check('server.tls.sans: %s' % WANT_SANS in r.stdout.splitlines(),
            '--check-config accepts the Service names as server.tls.sans', r.stdout[-600:])
    lines = [l for l in r.stdout.splitlines() if l.startswith('air_gap')]
    print('\n'.join('  ' + l for l in lines))
    c.check(any(l.split() == ['air_gap.enabled:', 'true'] for l in lines),
            '--check-config prints the air_gap lines (air_gap.enabled: true)', r.stdout[-600:])
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl')
    a = ap.parse_args()
    if not chart.helm_path():
        print('SKIP: helm not found (scripts/install-deps fetches it into .tools/bin)')
        return 77
    c = Checks()
    base = ['postgres.dsn=postgres://x@db:5432/x', 'nats.url=nats://n:4222',
            'kek.existingSecret=k']
    for values in ([], [AIRGAP]):
        cmd = [chart.helm_path(), 'lint', '--strict', chart.CHART]
        for v in values:
            cmd += ['-f', v]
        for s in base:
            cmd += ['--set', s]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        c.check(r.returncode == 0, 'helm lint --strict %s' % ' '.join(os.path.basename(v) for v in values),
                (r.stdout + r.stderr)[-800:])

    rc, out, err = chart.template(values=[AIRGAP], sets=chart.DOCUMENTED_SETS)
    if not c.check(rc == 0, 'helm template renders the documented air-gap install', err[-800:]):
        return 1
    docs = chart.documents(out)
    egress_checks(c, chart.find(docs, 'NetworkPolicy'))
    data = chart.find(docs, 'ConfigMap')['data']
    for k, v in WANT_CONFIG.items():
        c.check(data.get(k) == v, 'ConfigMap %s=%s' % (k, v), data.get(k))
    metrics_checks(c, docs)
    pin_checks(c, docs)
    server_attach_checks(c)
    tls_checks(c, docs)
    image = chart.find(docs, 'Deployment')['spec']['template']['spec']['containers'][0]['image']
    c.check(image == 'registry.airgap.local/trstctl:0.1.0', 'the image is the one set', image)

    for what, sets, msg in (
            ('no KEK choice', base[:2], 'OPS-003: kek.existingSecret or kek.generate=true is required'),
            ('telemetry on with the air gap', base + ['telemetry.enabled=true'],
             'telemetry.enabled must be false when air_gap.enabled is true')):
        rc, _, err = chart.template(values=[AIRGAP], sets=sets)
        c.check(rc != 0 and msg in err, 'render fails for %s: %s' % (what, msg), err[-400:])

    ran = True
    if a.trstctl:
        ran = check_config(c, docs, a.trstctl)
    print('%d check(s) failed' % c.failed if c.failed else 'all checks passed')
    if c.failed:
        return 1
    return 0 if ran else 77


if __name__ == '__main__':
    sys.exit(main())
