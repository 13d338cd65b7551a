"""The commands the network adapter sends (pure): both IP families, plans without speeds,
and the operation each service state asks of the network."""

from __future__ import annotations

from dotmac.isp.adapter import (
    OPERATION_FOR_STATUS,
    Command,
    activation_commands,
    block_commands,
    rate_limit,
    removal_commands,
    unblock_commands,
)
from dotmac.isp.models import ServiceItem
from dotmac.isp.services import ACTIONS, STATUSES

NUMBER = "INT-20261124-a1b2c3"


def test_the_rate_is_upload_over_download_and_absent_without_speeds() -> None:
    fibre = ServiceItem(download_mbps=300, upload_mbps=50)
    assert rate_limit(fibre) == "50M/300M"
    assert rate_limit(ServiceItem()) is None  # a phone or TV plan has no speeds


def test_an_ipv6_subscriber_gets_ipv6_attributes_and_firewall_lines() -> None:
    both = ["100.64.0.9", "2001:db8::9"]
    assert activation_commands(NUMBER, both, "20M/100M") == [
        Command("radius", f"radreply set {NUMBER} Framed-IP-Address := 100.64.0.9"),
        Command("radius", f"radreply set {NUMBER} Framed-IPv6-Address := 2001:db8::9"),
        Command("radius", f'radreply set {NUMBER} Mikrotik-Rate-Limit := "20M/100M"'),
        Command(
            "router",
            f"/queue simple add name={NUMBER} target=100.64.0.9/32,2001:db8::9/128 "
            f"max-limit=20M/100M comment={NUMBER}",
        ),
    ]
    assert [c.line for c in block_commands(NUMBER, both) if c.target == "router"] == [
        f"/ip firewall address-list add list=blocked address=100.64.0.9 comment={NUMBER}",
        f"/ipv6 firewall address-list add list=blocked address=2001:db8::9 comment={NUMBER}",
    ]
    assert [c.line for c in unblock_commands(NUMBER, both) if c.target == "router"] == [
        f"/ip firewall address-list remove [find list=blocked comment={NUMBER}]",
        f"/ipv6 firewall address-list remove [find list=blocked comment={NUMBER}]",
    ]


def test_a_plan_without_speeds_has_no_rate_and_no_queue() -> None:
    assert activation_commands(NUMBER, ["100.64.0.9"], None) == [
        Command("radius", f"radreply set {NUMBER} Framed-IP-Address := 100.64.0.9")
    ]
    assert removal_commands(NUMBER, ["100.64.0.9"], None) == [
        Command("radius", f"disconnect {NUMBER}"),
        Command("radius", f"radreply delete {NUMBER}"),
        Command("router", f"/ip firewall address-list remove [find comment={NUMBER}]"),
    ]


def test_every_state_a_transition_leads_to_asks_the_network_for_something() -> None:
    reached = {target for _, target in ACTIONS.values()}
    assert set(OPERATION_FOR_STATUS) == reached
    assert set(STATUSES) - reached == {"PENDING"}  # nothing is on the network before activation
