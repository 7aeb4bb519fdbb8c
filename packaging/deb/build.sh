#!/usr/bin/env bash
# Builds custodian-server_VERSION_ARCH.deb and custodian-agent_VERSION_ARCH.deb
# into target/deb with dpkg-deb (no cargo-deb needed).
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
out=target/deb
cargo build --release --locked --bins
rm -rf "$out"
mkdir -p "$out"

package() {
    local name=$1 description=$2; shift 2
    local root="$out/$name"
    install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/share/doc/custodian"
    for bin in "$@"; do install -m 0755 "target/release/$bin" "$root/usr/bin/$bin"; done
    install -m 0644 "packaging/systemd/$name.service" "$root/lib/systemd/system/"
    install -m 0644 README.md "$root/usr/share/doc/custodian/"
    cat >"$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: Custodian engineers <custodian@invalid>
Section: admin
Priority: optional
Depends: libc6
Description: $description
CONTROL
    if [ "$name" = custodian-server ]; then
        cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && ! getent passwd custodian >/dev/null; then
    adduser --system --group --home /var/lib/custodian --no-create-home custodian
fi
POSTINST
        chmod 0755 "$root/DEBIAN/postinst"
    fi
    dpkg-deb --build --root-owner-group "$root" "$out/${name}_${version}_${arch}.deb"
}

package custodian-server "Custodian server and custodianctl" custodian-server custodianctl
package custodian-agent "Custodian workstation agent" custodian-agent
ls -l "$out"/*.deb
