"""The buf binary of the API tests (tests/api, tests/served/test_buf_curl.py).

scripts/install-deps fetches buf with npm into .tools/bin/buf, pinned by version and
checksum, and when it cannot (npm offline, a checksum that does not match, no build for this
machine) it writes why to .tools/buf.missing. So a missing buf means one of two things:

  - install-deps tried and failed: the test fails and says why (a skip would hide a check
    that scripts/test is meant to run);
  - install-deps never ran in this checkout: the test exits 77 and says to run it.
"""

import os
import subprocess
import sys

SKIP = 77
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API = os.path.join(REPO, 'api')
BUF = os.path.join(REPO, '.tools', 'bin', 'buf')
MISSING = os.path.join(REPO, '.tools', 'buf.missing')


def find():
    """The path of buf; exits 1 (install-deps failed to fetch it) or 77 (never fetched)."""
    try:
        with open(MISSING) as f:
            why = f.read().strip()
    except FileNotFoundError:
        why = None
    if why is not None:
        print('FAIL: buf is missing: scripts/install-deps could not fetch it: %s\n'
              '(fix that, e.g. let npm reach its registry once, and run scripts/install-deps '
              'again)' % why, flush=True)
        sys.exit(1)
    if not os.access(BUF, os.X_OK):
        print('SKIP: buf not found at %s: run scripts/install-deps (it fetches '
              '@bufbuild/buf-linux-x64 with npm)' % BUF, flush=True)
        sys.exit(SKIP)
    return BUF


def run(argv, cwd=None, timeout=120, input_text=None):
    """Runs buf with argv; returns (exit code, stdout, stderr)."""
    r = subprocess.run([find()] + list(argv), cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, input=input_text)
    return r.returncode, r.stdout, r.stderr
