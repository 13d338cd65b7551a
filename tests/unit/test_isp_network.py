"""Pure rules of the network inventory: MAC and address forms, interface names in URLs,
circuit ends, report times and alert ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from dotmac.isp import network
from dotmac.notifications.schemas import Notification

WAT = timezone(timedelta(hours=1))  # West Africa Time


@pytest.mark.parametrize(
    "text", ["00:1A:2b:3C:4d:5E", "00-1a-2b-3c-4d-5e", "001a.2b3c.4d5e", "001A.2B3C.4D5E"]
)
def test_mac_addresses_are_stored_in_one_form(text: str) -> None:
    assert network.canonical_mac(text) == "00:1a:2b:3c:4d:5e"


@pytest.mark.parametrize(
    "text",
    ["001a2b3c4d5e", "00:1a-2b:3c:4d:5e", "00:1a:2b:3c:4d", "001a.2b3c.4d5g", "00:1a:2b:3c:4d:5e "],
)
def test_other_mac_forms_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        network.canonical_mac(text)


def test_management_addresses_are_canonical_unicast() -> None:
    assert network.canonical_ip("2001:DB8:0::0001") == "2001:db8::1"
    assert network.canonical_ip(" 10.0.0.1") == "10.0.0.1"
    for text in ("0.0.0.0", "::", "239.1.1.1", "ff02::1", "10.0.0.0/24", "host"):
        with pytest.raises(ValueError):
            network.canonical_ip(text)


@pytest.mark.parametrize("name", ["ge-0/0/1", "xe-1/0/0:1", "GigabitEthernet0/1.100", "ae0"])
def test_interface_names_survive_a_url_segment(name: str) -> None:
    segment = network.interface_segment(name)
    assert "/" not in segment
    assert network.interface_name(segment) == name


def test_a_circuit_end_is_an_interface_or_a_site() -> None:
    device = "0123456789abcdef"
    on_device = network.Termination(device_id=device, interface="ge-0/0/1")
    assert on_device.end() == (device, "ge-0/0/1")
    assert network.Termination(site="Lagos POP").end() is None
    for bad in (
        {},
        {"device_id": device},
        {"interface": "ge-0/0/1"},
        {"device_id": device, "interface": "ge-0/0/1", "site": "x"},
        {"site": "x", "interface": "ge-0/0/1"},
    ):
        with pytest.raises(ValidationError):
            network.Termination.model_validate(bad)


def test_reports_from_the_future_are_refused_beyond_the_skew() -> None:
    now = datetime.now(UTC)
    soon = now + network.MAX_CLOCK_SKEW - timedelta(seconds=30)
    assert network.not_in_future(soon) == soon
    with pytest.raises(ValueError):
        network.not_in_future(now + network.MAX_CLOCK_SKEW + timedelta(seconds=30))
    lagos = datetime(2026, 5, 1, 11, 0, tzinfo=WAT)
    assert network.not_in_future(lagos) == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert network.not_in_future(lagos).tzinfo == UTC


def test_alert_ids_are_deterministic_per_transition_and_valid_notification_ids() -> None:
    at = datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    same = at.astimezone(WAT)
    device = "0123456789abcdef"
    assert network.alert_id(device, at) == network.alert_id(device, same)
    assert network.alert_id(device, at) != network.alert_id(device, at + timedelta(microseconds=1))
    pattern = Notification.model_fields["id"].metadata[0].pattern
    assert re.fullmatch(pattern, network.alert_id(device, at))
