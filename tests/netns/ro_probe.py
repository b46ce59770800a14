"""Bad input for the correspondent, crafted with scapy from a probe namespace (issue 9 test 4).

Run as `python -m tests.netns.ro_probe CN HOME CARE_OF` inside a kernel-IPv6 probe that holds
both HOME and CARE_OF (so it can pass the return routability tests itself). Prints one JSON
object: what the CN answered to each case (from a sniffer on eth0, decoded by our codec).
Lengths of the Nonce Indices (4) and Binding Authorization Data (12) options are set
explicitly: scapy's defaults are wrong for both.
"""

from __future__ import annotations

import json
import sys
import time
from ipaddress import IPv6Address

from scapy.all import AsyncSniffer, conf, send
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BU,
    IPv6,
    IPv6ExtHdrDestOpt,
    MIP6MH_CoTI,
    MIP6MH_HoTI,
    MIP6OptBindingAuthData,
    MIP6OptNonceIndices,
)

from netstack.mobility.return_routability import binding_management_key, sign
from netstack.wire.ipv6 import parse_ipv6_packet
from netstack.wire.mh import BindingUpdate, NonceIndices
from netstack.wire.mh_codec import decode_mobility_packet

conf.verb = 0


def main() -> int:
    cn, home, care_of = (IPv6Address(a) for a in sys.argv[1:4])
    got: list = []

    def keep(pkt) -> None:
        raw = bytes(pkt)[14:]
        try:
            parsed = parse_ipv6_packet(raw)
            if parsed.src == cn and parsed.upper_protocol == 135:
                got.append((parsed, decode_mobility_packet(parsed)))
        except Exception:  # noqa: BLE001 - anything not ours is not interesting
            pass

    sniffer = AsyncSniffer(iface="eth0", filter="ip6", prn=keep, store=False)
    sniffer.start()
    time.sleep(0.5)

    def wait_for(name: str, count: int, timeout: float = 3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for _, m in got if type(m).__name__ == name]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return [m for _, m in got if type(m).__name__ == name]

    results: dict[str, object] = {}
    # return routability with our two addresses: HoTI from HOME, CoTI from CARE_OF (scapy)
    send(IPv6(src=str(home), dst=str(cn)) / MIP6MH_HoTI(cookie=b"homecook"))
    send(IPv6(src=str(care_of), dst=str(cn)) / MIP6MH_CoTI(cookie=b"careofck"))
    hot = wait_for("HomeTest", 1)[0]
    cot = wait_for("CareOfTest", 1)[0]
    kbm = binding_management_key(hot.home_keygen_token, cot.care_of_keygen_token)

    def bu(sequence: int, *, key: bytes = kbm, indices: tuple[int, int] | None = None) -> None:
        hi, ci = indices or (hot.home_nonce_index, cot.care_of_nonce_index)
        message = sign(BindingUpdate(sequence=sequence, lifetime=40, ack=True,
                                     home_registration=False, options=(NonceIndices(hi, ci),)),
                       key, care_of, cn)
        auth = int.from_bytes(message.options[-1].authenticator, "big")  # our RFC 5.2.6 code
        # scapy builds the BU; lengths set explicitly (its defaults: 16 for both options)
        mh = MIP6MH_BU(seq=sequence, flags="A", mhtime=10, options=[
            MIP6OptNonceIndices(olen=4, hni=hi, coni=ci),
            MIP6OptBindingAuthData(olen=12, authenticator=auth)])
        send(IPv6(src=str(care_of), dst=str(cn)) / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(home))])
             / mh)

    def answers(name: str, before: int) -> list:
        time.sleep(0.8)
        return [m for _, m in got[before:] if type(m).__name__ == name]

    n = len(got)
    bu(100, key=bytes(20))  # wrong authenticator
    results["wrong_authenticator"] = [m.status for m in answers("BindingAck", n)]
    n = len(got)
    bu(101, indices=(hot.home_nonce_index, (cot.care_of_nonce_index + 5000) & 0xFFFF))
    results["expired_care_of_nonce"] = [m.status for m in answers("BindingAck", n)]
    n = len(got)
    bu(102, indices=((hot.home_nonce_index + 5000) & 0xFFFF, cot.care_of_nonce_index))
    results["expired_home_nonce"] = [m.status for m in answers("BindingAck", n)]
    n = len(got)
    bu(200)
    results["valid"] = [m.status for m in answers("BindingAck", n)]
    n = len(got)
    bu(150)  # older than 200
    results["old_sequence"] = [(m.status, m.sequence) for m in answers("BindingAck", n)]
    n = len(got)
    stranger = IPv6Address(int(home) + 7)
    send(IPv6(src=str(care_of), dst=str(cn)) / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(stranger))])
         / UDP(sport=5000, dport=9) / b"no binding")
    results["hao_without_binding"] = [(m.status, str(m.home_address))
                                      for m in answers("BindingError", n)]
    n = len(got)
    send(IPv6(src=str(care_of), dst=str(cn)) / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(home))])
         / MIP6MH_HoTI(cookie=b"withhao!"))
    results["hoti_with_hao"] = [type(m).__name__ for _, m in got[n:]] + [
        type(m).__name__ for m in answers("HomeTest", n)]
    sniffer.stop()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
