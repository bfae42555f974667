"""The Helm chart as an operator sees it: rendered by the real helm (v4, fetched by
scripts/install-deps into .tools/bin), parsed, and turned into the environment the trstctl
container would get. Shared by tests/helm/test_chart.py and the operator-path test.

The documented install (docs/install.md) is DOCUMENTED_SETS on top of values-airgap.yaml;
the install test checks that the walk-through uses exactly these flags.
"""

import os
import re
import shutil
import subprocess

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(REPO, 'deploy', 'helm', 'trstctl')
HELM = os.path.join(REPO, '.tools', 'bin', 'helm')

# The documented install command's --set flags (README of issue 13, docs/install.md).
DOCUMENTED_SETS = [
    "postgres.dsn=postgres://user:pass@pg.internal:5432/trstctl?sslmode=require",
    'nats.url=nats://nats.internal:4222',
    'image.repository=registry.airgap.local/trstctl',
    'image.tag=0.1.0',
    'kek.existingSecret=trstctl-kek',
]
PRIVATE_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']


def helm_path():
    """The helm binary, or None when scripts/install-deps could not fetch it."""
    if os.access(HELM, os.X_OK):
        return HELM
    return shutil.which('helm')


def template(chart=CHART, values=(), sets=(), release='trstctl', namespace='trstctl'):
    """Runs `helm template`; returns (rc, stdout, stderr)."""
    cmd = [helm_path(), 'template', release, chart, '-n', namespace]
    for v in values:
        cmd += ['-f', v]
    for s in sets:
        cmd += ['--set', s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def documents(text):
    """The rendered manifests, as a list of dicts (empty documents dropped)."""
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs, kind):
    """The one document of that kind."""
    found = [d for d in docs if d.get('kind') == kind]
    if len(found) != 1:
        raise AssertionError('want one %s, rendered %d' % (kind, len(found)))
    return found[0]


def container(docs, name='trstctl'):
    """A container (or init container) of the Deployment's pod, by name."""
    pod = find(docs, 'Deployment')['spec']['template']['spec']
    return [c for c in pod['containers'] + pod.get('initContainers', [])
            if c['name'] == name][0]


def container_env(docs, field_values=None, name='trstctl'):
    """The environment of a container (default the trstctl one), as Kubernetes would build
    it: the ConfigMap (envFrom), then env entries (value, secretKeyRef on a rendered Secret,
    fieldRef from field_values), with $(VAR) references expanded."""
    field_values = field_values or {}
    ctr = container(docs, name)
    secrets = {d['metadata']['name']: d for d in docs if d.get('kind') == 'Secret'}
    maps = {d['metadata']['name']: d for d in docs if d.get('kind') == 'ConfigMap'}
    env = {}
    for src in ctr.get('envFrom', []):
        env.update({k: str(v) for k, v in maps[src['configMapRef']['name']]['data'].items()})
    for e in ctr.get('env', []):
        if 'value' in e:
            env[e['name']] = re.sub(r'\$\(([A-Za-z_0-9]+)\)',
                                    lambda m: env.get(m.group(1), m.group(0)), str(e['value']))
            continue
        ref = e['valueFrom']
        if 'secretKeyRef' in ref:
            sec = secrets.get(ref['secretKeyRef']['name'])
            if sec is None:
                continue  # an existing Secret of the cluster: the caller provides it
            env[e['name']] = str(sec.get('stringData', {})[ref['secretKeyRef']['key']])
        elif 'fieldRef' in ref:
            env[e['name']] = field_values[ref['fieldRef']['fieldPath']]
    return env
