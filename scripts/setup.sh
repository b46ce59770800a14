#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root): system packages the test bed
# and the tests use, then a virtualenv with mip6term installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-pip iproute2 radvd tshark iperf3 nftables ethtool
              dnsmasq-base tayga curl tcpdump procps psmisc kmod iputils-ping
              # the appliance VM (issue 5): image build, QEMU under libvirt, libvirt-python build
              qemu-system-x86 qemu-utils debootstrap e2fsprogs libvirt-daemon
              libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config gcc python3-dev
              openssh-client
              # the TLS gateway of patent E8 (issue 13): Squid with OpenSSL (https_port)
              squid-openssl
              # SIP VoIP (issue 12): the proxy and the phones; stdbuf (coreutils) for their logs
              kamailio baresip-core coreutils
              # the eBPF fast path (issue 14): clang builds the tc programs, libbpf1 loads them
              clang llvm libbpf-dev libbpf1 bpftool)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer for it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libvirt's QEMU driver (embedded or daemon) refuses to start without its default user, even
# when qemu.conf says to run QEMU as root; libvirt-daemon-system would create it (and a daemon).
getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home \
  --shell /usr/sbin/nologin --user-group libvirt-qemu

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.mip6term-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test,vm]'
  touch "$stamp"
fi
# The fast path's tc programs (never committed; the agents fall back to Python without them)
.venv/bin/python -m netstack.fastpath build || echo "setup: fast path not built (see above)"
echo "setup: ready (.venv/bin/mip6term)"
