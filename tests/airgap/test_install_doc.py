"""docs/install.md and docs/telemetry.md say what the code does.

- The walk-through of install.md (sections 1 and 2) is what tests/airgap/test_operator_path.py
  extracts and runs; this checks that it holds every step of the operator path, that its
  `helm template` uses exactly the documented --set flags (tests/helm/chart.py, which
  tests/helm/test_chart.py renders), that the cluster section installs with the same
  flags, and that the export lines name only the variables the test replaces.
- telemetry.md names every telemetry.* setting that `trstctl --check-config` prints, the
  air-gap refusal with the message the server gives, and that the report is off by default
  (nothing sent while off).
"""
import argparse
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, 'tests', 'helm'))
sys.path.insert(0, HERE)
import chart  # noqa: E402
from test_operator_path import walkthrough  # noqa: E402

failed = 0


def check(ok, what, detail=''):
    global failed
    print('%s: %s%s' % ('ok' if ok else 'FAIL', what, (' (%s)' % detail) if not ok else ''))
    failed += not ok


def sets_of(cmd):
    words = shlex.split(cmd.replace('\\\n', ' '))
    return [words[i + 1].replace('$VERSION', '0.1.0') for i, w in enumerate(words)
            if w == '--set']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trstctl')
    a = ap.parse_args()
    exports, cmds = walkthrough()
    names = set()
    for e in exports:
        names |= {w.split('=', 1)[0] for w in shlex.split(e)[1:]}
    check(names == {'VERSION', 'IMAGE', 'OUT_DIR', 'KEY', 'KEY_FPR'},
          'the export lines set only what the operator-path test replaces', names)
    steps = [r'^scripts/build-image$', r'^scripts/sign-image ', r'^scripts/verify-image\.sh ',
             r'^make airgap-bundle ', r'^shasum -a 256 -c trstctl-\$VERSION-airgap\.tar\.gz\.sha256$',
             r'^tar -xzf ', r'^shasum -a 256 -c CHECKSUMS\.txt$', r'^helm template ']
    at = -1
    for pat in steps:
        idx = [i for i, c in enumerate(cmds) if re.search(pat, c)]
        check(idx and idx[0] > at, 'the walk-through runs %s in order' % pat.strip('^$'), cmds)
        at = idx[0] if idx else at
    helm = [c for c in cmds if c.startswith('helm template ')]
    check(helm and sorted(sets_of(helm[0])) == sorted(chart.DOCUMENTED_SETS),
          'helm template uses exactly the documented --set flags', helm and sets_of(helm[0]))
    text = open(os.path.join(REPO, 'docs', 'install.md')).read()
    m = re.search(r'^helm upgrade --install .*?(?=^kubectl)', text, re.M | re.S)
    check(m and sorted(sets_of(m.group(0))) == sorted(chart.DOCUMENTED_SETS),
          'the cluster install uses the same --set flags', m and sets_of(m.group(0)))
    check('-f manifests/values-airgap.yaml' in helm[0] and m and
          '-f manifests/values-airgap.yaml' in m.group(0), 'both use values-airgap.yaml')

    tele = open(os.path.join(REPO, 'docs', 'telemetry.md')).read()
    if a.trstctl:
        env = {'PATH': os.environ.get('PATH', ''), 'TRSTCTL_KEK_GENERATE': 'true',
               'TRSTCTL_POSTGRES_DSN': 'host=/nonexistent', 'TRSTCTL_STATE_DIR': '/nonexistent',
               'TRSTCTL_NATS_URL': 'nats://127.0.0.1:4222'}
        out = subprocess.run([a.trstctl, '--check-config'], env=env, capture_output=True,
                             text=True).stdout
        keys = re.findall(r'^(telemetry\.[a-z_]+):', out, re.M)
        check(keys and all('`%s`' % k in tele for k in keys),
              'telemetry.md names every telemetry setting of --check-config', keys)
        r = subprocess.run([a.trstctl, '--check-config'], capture_output=True, text=True,
                           env=dict(env, TRSTCTL_AIRGAP_ENABLED='true',
                                    TRSTCTL_TELEMETRY_ENABLED='true'))
        msg = r.stderr.strip()
        check(r.returncode == 1 and msg and msg in tele,
              'telemetry.md quotes the air-gap refusal exactly', msg)
    flat = ' '.join(tele.split())
    check('off by default' in flat and 'nothing is sent while it is off' in flat,
          'telemetry.md says the report is off by default and nothing is sent while off')
    print('%d check(s) failed' % failed if failed else 'all checks passed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
