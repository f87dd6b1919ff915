#!/usr/bin/env bash
# Re-vendors the socket.io-client browser bundle that swarmcast.dash serves to Dash
# pages: `npm pack socket.io-client@VERSION`, check the tarball's sha256, take
# dist/socket.io.min.js and the MIT LICENSE, and wrap the bundle so that it does not
# define `window.io` (nor register an AMD/CommonJS module): the client ends up as
# `window.swarmcastDash.io`, the one global swarmcast.dash adds.
#
# The bundle's bytes are kept verbatim between the wrapper's first and last lines,
# except its trailing `//# sourceMappingURL=` comment (the map is not shipped).
# Usage: bash scripts/vendor-socketio.sh   (needs npm and the npm registry)
set -euo pipefail

VERSION=4.8.4
TARBALL_SHA256=0b40f47a2e2fe81182785dfcd333156d854e50bc4a5f23e654de7d7f7b0c151b

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/python/swarmcast/dash_assets"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack "socket.io-client@${VERSION}" --silent >/dev/null)
tarball="$work/socket.io-client-${VERSION}.tgz"
echo "${TARBALL_SHA256}  ${tarball}" | sha256sum --check --quiet
tar -xzf "$tarball" -C "$work" package/dist/socket.io.min.js package/LICENSE

bundle="$work/package/dist/socket.io.min.js"
bundle_sha="$(sha256sum "$bundle" | cut -d' ' -f1)"
{
    printf '/* socket.io-client %s (MIT, see socket.io-client.LICENSE), dist/socket.io.min.js sha256 %s,\n' "$VERSION" "$bundle_sha"
    printf '   wrapped by scripts/vendor-socketio.sh: exported as window.swarmcastDash.io, never window.io. */\n'
    printf '(function(){var module={exports:{}},exports=module.exports,define=void 0;\n'
    grep -v '^//# sourceMappingURL=' "$bundle"
    printf '\n;(window.swarmcastDash=window.swarmcastDash||{}).io=module.exports;})();\n'
} >"$OUT/socket.io-client.js"
cp "$work/package/LICENSE" "$OUT/socket.io-client.LICENSE"
echo "vendored socket.io-client ${VERSION} into ${OUT#"$ROOT"/}"
