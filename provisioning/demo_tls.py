"""The demo's TLS-inside-TLS step (patent E8, issue 13): an unmodified curl on `host` fetches
https://cn.example/ and verifies the CN itself, while the guest carries it in TLS to Squid."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from provisioning import netns
from provisioning import status as status_module
from provisioning.nodes import tls_ca
from provisioning.topology import namespace


def show_tls_gateway(console: Console, prefix: str, sdir: str) -> bool:
    """One HTTPS fetch from host through the gateway; prints the outer session. True if 200."""
    ca = tls_ca.ca_certificate_path(sdir)
    done = netns.run(namespace(prefix, "host"), [
        "curl", "-4", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
        "--cacert", ca, "https://cn.example/"], timeout=30)
    code = done.stdout.decode() or "failed"
    tls: dict[str, Any] = status_module.collect(sdir).get("guest", {}).get("tls_gateway", {})
    recent = tls.get("recent") or [{}]
    flow = recent[-1]
    console.print(f"HTTPS on host, curl https://cn.example/ (CN certificate checked by curl): "
                  f"HTTP {code}; outer session {flow.get('tls_version', '?')} "
                  f"{flow.get('cipher', '?')} from {flow.get('outer_local', '?')} to "
                  f"{tls.get('gateway', {}).get('name', '?')} (Squid), CONNECT "
                  f"{flow.get('destination', '?')}")
    return code == "200"
