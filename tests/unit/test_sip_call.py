"""`testbed call` helpers that need no bed: baresip's summary, the JSON, configs."""

from __future__ import annotations

from provisioning.nodes import sip
from provisioning.sip_call import CallResult, RtpFigures, rtp_summary

SUMMARY = """call: terminate call 'x' with sip:cn@sip.example
EX=BareSip;CS=0;CD=6;PR=250;PS=250;PL=0,0;PD=0,0;JI=0.8,1.0;DL=0.0;
audio           Transmit:     Receive:
packets:            301          299
avg. bitrate:      64.2         64.2  (kbit/s)
errors:               0            0
pkt.report:         250          250
lost:                 0            2
jitter:             1.0          0.8  (ms)
"""


def test_summary_takes_the_last_block() -> None:
    figures = rtp_summary("audio           Transmit:     Receive:\npackets: 1 1\n" + SUMMARY)
    assert (figures.sent, figures.received, figures.lost_by_peer, figures.lost) == (301, 299, 0, 2)


def test_summary_without_rtcp_has_no_lost_figures() -> None:
    short = "audio           Transmit:     Receive:\npackets:            151          150\n" \
            "avg. bitrate:      64.3         64.4  (kbit/s)\n"
    figures = rtp_summary(short)
    assert (figures.sent, figures.received, figures.lost) == (151, 150, None)
    assert rtp_summary("no call here").sent is None


def test_call_json_has_loss_against_the_far_end() -> None:
    result = CallResult("host4", "cn", established=True, setup_ms=7.25)
    result.rtp = {"host4": RtpFigures(sent=250, received=245), "cn": RtpFigures(250, 250)}
    out = result.as_dict()
    assert out["status"] == 200 and out["setup_ms"] == 7.2
    assert out["rtp"]["host4"]["missing"] == 5 and out["rtp"]["host4"]["loss_ratio"] == 0.02
    assert out["rtp"]["cn"]["missing"] == 0
    # the far end kept sending after we hung up (our BYE still travelling): not lost ...
    result.rtp = {"cn": RtpFigures(sent=251, received=250), "host4": RtpFigures(269, 251)}
    assert result.as_dict()["rtp"]["cn"]["missing"] == 1
    # ... but a gap while both sent still is
    result.rtp = {"cn": RtpFigures(sent=251, received=200), "host4": RtpFigures(251, 251)}
    assert result.as_dict()["rtp"]["cn"]["loss_ratio"] == round(51 / 251, 4)
    failed = CallResult("host4", "cn", status=488, reason="488 Not Acceptable Here").as_dict()
    assert failed["established"] is False and failed["status"] == 488


def test_phone_configs() -> None:
    phones = sip.phones("198.18.0.2")
    host4 = sip.baresip_config(phones["host4"])
    assert "sip_listen 198.18.0.2:5062" in host4 and "ausrc_srate 48000" in host4
    assert "ausrc_channels 2" in host4 and "ctrl_tcp_listen 127.0.0.1:4444" in host4
    assert "dns_server" not in host4  # the guest's DNS via the host's resolv.conf
    assert "dns_server [2001:db8:6::53]:53" in sip.baresip_config(phones["cn"])
    account = sip.baresip_account(phones["cn"])
    assert account.startswith("<sip:cn@sip.example>") and "answermode=auto" in account
    assert len({p.sip_listen for p in phones.values()}) == len(phones) == 4


def test_kamailio_config_listens_on_ipv6_with_the_alias() -> None:
    cfg = sip.kamailio_config()
    assert "listen=udp:[2001:db8:8::5060]:5060" in cfg
    assert 'alias="sip.example"' in cfg
    assert 'modparam("usrloc", "db_mode", 0)' in cfg and "record_route()" in cfg
