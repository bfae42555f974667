#!/usr/bin/env bash
# verify-image.sh [--key PUBLIC-KEY] [--signature SIG] IMAGE
#
# Checks, offline, that IMAGE (a docker-archive made by scripts/build-image) is the image the
# release key signed, before it goes into an air-gap bundle:
#   1. digests: the config hashes to its name and every layer to the diff_id the config
#      records (scripts/lib/image-digests), so nothing in the archive changed;
#   2. signature: SIG (default IMAGE.sig, made by scripts/sign-image with skopeo
#      standalone-sign) verifies with `skopeo standalone-verify` against PUBLIC-KEY (default
#      deploy/keys/trstctl-release.asc), for the manifest skopeo derives from the archive
#      (it names the config digest, hence every layer) and for the archive's own tag, so a
#      re-tagged image fails too.
# Prints "verify-image: OK ..." and exits 0, or names what failed and where, and exits 1
# (2 for a usage error).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
key=$repo/deploy/keys/trstctl-release.asc sig=""
usage() { echo "usage: verify-image.sh [--key PUBLIC-KEY] [--signature SIG] IMAGE" >&2; exit 2; }
while [ $# -gt 1 ]; do
	case $1 in
	--key) key=$2; shift 2 ;;
	--signature) sig=$2; shift 2 ;;
	*) usage ;;
	esac
done
[ $# -eq 1 ] || usage
image=$1 sig=${sig:-$1.sig}
fail() { echo "verify-image: $*" >&2; exit 1; }
for t in skopeo gpg /usr/bin/python3; do
	command -v "$t" >/dev/null || fail "$t is required (scripts/install-deps installs it)"
done
[ -f "$image" ] || fail "$image: no such image archive"
[ -f "$sig" ] || fail "$image: no signature at $sig: the image is not signed (scripts/sign-image)"
[ -f "$key" ] || fail "$key: no such public key"

ref=$("$repo/scripts/lib/image-digests" "$image") || exit 1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GNUPGHOME=$tmp/gnupg
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --import "$key" 2>"$tmp/gpg.err" ||
	fail "$key: not an OpenPGP public key ($(tail -1 "$tmp/gpg.err"))"
fprs=$(gpg --batch --with-colons --list-keys | awk -F: '$1 == "fpr" { print $10 }')
skopeo inspect --raw "docker-archive:$image" >"$tmp/manifest.json" 2>"$tmp/skopeo.err" ||
	fail "$image: skopeo cannot read it: $(tail -1 "$tmp/skopeo.err")"
for fpr in $fprs; do
	if out=$(skopeo standalone-verify "$tmp/manifest.json" "$ref" "$fpr" "$sig" 2>&1); then
		echo "verify-image: OK $image ($ref): ${out#Signature verified, }, signed by $fpr"
		exit 0
	fi
	why=$(sed -n 's/.*msg="\(.*\)"$/\1/p' <<<"$out")
	why=${why:-$out}
done
fail "$image ($ref): signature $sig does not verify with $key: $why"
