#!/usr/bin/env bash
# Install libswarmcast for C and C++ programs:
#   $PREFIX/include/swarmcast.h
#   $LIBDIR/libswarmcast.so.X.Y.Z, its SONAME link (libswarmcast.so.0.MINOR) and libswarmcast.so
#   $LIBDIR/libswarmcast.a        (only swarmcast_* symbols left global)
#   $LIBDIR/pkgconfig/swarmcast.pc
# then `cc app.c $(pkg-config --cflags --libs swarmcast)` (add --static for the .a).
#
# Usage: bindings/c/install.sh [--prefix DIR] [--libdir DIR] [--profile release|debug] [--no-build]
# Env: PREFIX (default /usr/local), DESTDIR (staging root, as `make install`).
# The release build is the default (the debug one is 40+ MB, unoptimised).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREFIX="${PREFIX:-/usr/local}"
LIBDIR=""
PROFILE=release
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --libdir) LIBDIR="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
LIBDIR="${LIBDIR:-$PREFIX/lib}"
DESTDIR="${DESTDIR:-}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
MAJOR="${VERSION%%.*}"
MINOR="$(cut -d. -f2 <<<"$VERSION")"
if [ "$MAJOR" = 0 ]; then SONAME="libswarmcast.so.0.$MINOR"; else SONAME="libswarmcast.so.$MAJOR"; fi

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    if [ "$PROFILE" = release ]; then
        cargo build --release -p swarmcast-c
    else
        cargo build -p swarmcast-c
    fi
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "$PROFILE" = release ]; then SRC="$TARGET_DIR/release"; else SRC="$TARGET_DIR/debug"; fi

inc="$DESTDIR$PREFIX/include"
lib="$DESTDIR$LIBDIR"
mkdir -p "$inc" "$lib/pkgconfig"
install -m 644 "$ROOT/include/swarmcast.h" "$inc/swarmcast.h"
install -m 755 "$SRC/libswarmcast.so" "$lib/libswarmcast.so.$VERSION"
ln -sf "libswarmcast.so.$VERSION" "$lib/$SONAME"
ln -sf "$SONAME" "$lib/libswarmcast.so"

# The static library: one relocatable object holding the whole archive, with every
# global symbol but swarmcast_* made local, so that Rust's std and the dependencies
# cannot clash with the program's own symbols.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
ld -r -o "$tmp/swarmcast.o" --whole-archive "$SRC/libswarmcast.a"
# rustc embeds LLVM bitcode (.llvmbc) that the system's binutils LTO plugin may fail to
# read (ar and nm then abort): it is of no use to a C linker, drop it.
objcopy --wildcard --keep-global-symbol='swarmcast_*' \
    --remove-section=.llvmbc --remove-section=.llvmcmd "$tmp/swarmcast.o"
"${AR:-ar}" rcs "$tmp/libswarmcast.a" "$tmp/swarmcast.o"
install -m 644 "$tmp/libswarmcast.a" "$lib/libswarmcast.a"

cat >"$lib/pkgconfig/swarmcast.pc" <<PC
prefix=$PREFIX
exec_prefix=\${prefix}
libdir=$LIBDIR
includedir=\${prefix}/include

Name: swarmcast
Description: Socket.IO (Engine.IO v4 / Socket.IO v5) server library for C and C++
Version: $VERSION
Libs: -L\${libdir} -lswarmcast
Libs.private: -lpthread -ldl -lm -lrt -lutil
Cflags: -I\${includedir}
PC
echo "installed swarmcast $VERSION ($PROFILE) into ${DESTDIR}$PREFIX"
