"""IPAM rules without AWS: usable addresses, keys, free-address search, the allocation guard
(threshold crossing), hierarchy placement and request validation."""

from __future__ import annotations

import ipaddress
from itertools import islice
from typing import Any

import pydantic
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dotmac.core.errors import ConflictError
from dotmac.isp.ipam import (
    MAX_ALLOCATION,
    AllocationRequest,
    Guard,
    PrefixCreate,
    PrefixUpdate,
    VrfCreate,
    address_from_key,
    address_key,
    cidr_key,
    descendants_range,
    direct_children,
    fingerprint,
    free_addresses,
    guard_for,
    is_usable,
    network_from_key,
    parse_address,
    parse_prefix,
    pick,
    record_key,
    supernets,
    threshold_count,
    usable_bounds,
    usable_count,
    utilisation,
    window,
)

net = ipaddress.ip_network
ip = ipaddress.ip_address


# --- usable addresses --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "pool", "first", "last", "count"),
    [
        ("10.0.0.0/24", False, "10.0.0.1", "10.0.0.254", 254),
        ("10.0.0.0/26", False, "10.0.0.1", "10.0.0.62", 62),
        ("10.0.0.0/30", False, "10.0.0.1", "10.0.0.2", 2),
        ("10.0.0.0/31", False, "10.0.0.0", "10.0.0.1", 2),  # point-to-point: both usable
        ("10.0.0.7/32", False, "10.0.0.7", "10.0.0.7", 1),
        ("10.0.0.0/24", True, "10.0.0.0", "10.0.0.255", 256),  # a pool uses every address
        ("10.0.0.0/30", True, "10.0.0.0", "10.0.0.3", 4),
        ("0.0.0.0/0", False, "0.0.0.1", "255.255.255.254", 2**32 - 2),
        ("2001:db8::/64", False, "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", 2**64 - 1),
        ("2001:db8::/127", False, "2001:db8::", "2001:db8::1", 2),
        ("2001:db8::5/128", False, "2001:db8::5", "2001:db8::5", 1),
        ("2001:db8::/126", True, "2001:db8::", "2001:db8::3", 4),
    ],
)
def test_usable_bounds(prefix: str, pool: bool, first: str, last: str, count: int) -> None:
    network = net(prefix)
    assert usable_bounds(network, pool) == (ip(first), ip(last))
    assert usable_count(network, pool) == count


def small_networks(version: int) -> st.SearchStrategy[Any]:
    """Networks small enough to enumerate (at most 1024 addresses)."""
    bits = 32 if version == 4 else 128
    make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return st.builds(
        lambda value, length: make((value, length), strict=False),
        st.integers(0, 2**bits - 1),
        st.integers(bits - 10, bits),
    )


any_small_network = st.one_of(small_networks(4), small_networks(6))


@given(any_small_network, st.booleans())
def test_usable_addresses_are_hosts_or_every_address_of_a_pool(network: Any, pool: bool) -> None:
    expected = list(network) if pool else list(network.hosts())
    first, last = usable_bounds(network, pool)
    assert (first, last) == (expected[0], expected[-1])
    assert usable_count(network, pool) == len(expected)
    assert [a for a in network if is_usable(a, network, pool)] == expected


@given(any_small_network, st.booleans(), st.data())
def test_free_addresses_are_the_usable_ones_not_taken(network: Any, pool: bool, data: Any) -> None:
    usable = list(network) if pool else list(network.hosts())
    taken = sorted(data.draw(st.sets(st.sampled_from(usable))))
    # Addresses outside the usable range (e.g. another prefix's) are ignored.
    noise = [network.network_address] if not pool and network.prefixlen < 31 else []
    free = list(free_addresses(network, pool, sorted({*taken, *noise})))
    assert free == [a for a in usable if a not in set(taken)]


def test_free_addresses_reads_taken_lazily() -> None:
    read: list[int] = []

    def taken(last: int) -> Any:
        for n in range(1, last):
            read.append(n)
            yield ip(f"10.0.{n // 256}.{n % 256}")

    found = free_addresses(net("10.0.0.0/16"), False, taken(1000))
    assert next(found) == ip("10.0.3.232")  # 10.0.0.1 .. 10.0.3.231 are taken
    assert len(read) == 1000 - 1
    read.clear()
    gaps = free_addresses(
        net("10.0.0.0/16"), False, (ip(f"10.0.0.{2 * n + 1}") for n in range(100))
    )
    assert list(islice(gaps, 3)) == [ip("10.0.0.2"), ip("10.0.0.4"), ip("10.0.0.6")]


def test_free_addresses_at_the_top_of_the_address_space() -> None:
    top = net("255.255.255.252/30")
    assert list(free_addresses(top, True, [])) == [
        ip(f"255.255.255.{n}") for n in (252, 253, 254, 255)
    ]
    assert list(free_addresses(top, True, [ip("255.255.255.255")])) == [
        ip("255.255.255.252"),
        ip("255.255.255.253"),
        ip("255.255.255.254"),
    ]
    assert list(free_addresses(net("255.255.255.255/32"), False, [ip("255.255.255.255")])) == []


@settings(max_examples=60)
@given(
    any_small_network,
    st.booleans(),
    st.lists(st.integers(1, 8), min_size=1, max_size=30),
    st.data(),
)
def test_allocations_are_always_usable_and_distinct(
    network: Any, pool: bool, counts: list[int], data: Any
) -> None:
    """Sequential allocations of random sizes, each from a random attempt's window: every
    address is usable and handed out once; a request that does not fit is refused whole."""
    usable = usable_count(network, pool)
    allocated: list[Any] = []
    for count in counts:
        attempt = data.draw(st.integers(0, 5))
        try:
            guard_for(len(allocated), count, usable, 80)
        except ConflictError as exc:
            assert exc.code == "PREFIX_EXHAUSTED"
            assert len(allocated) + count > usable
            continue
        taken = sorted(allocated)
        free = list(islice(free_addresses(network, pool, taken), window(count, attempt)))
        chosen = pick(free, count, attempt)
        assert len(chosen) == count == len(set(chosen))
        assert all(is_usable(a, network, pool) for a in chosen)
        assert not set(chosen) & set(allocated)
        allocated.extend(chosen)
    assert len(allocated) == len(set(allocated)) <= usable


def test_pick_takes_the_next_free_first_then_spreads_after_a_lost_race() -> None:
    free = [ip(f"10.0.0.{n}") for n in range(1, 41)]
    assert pick(free, 3, 0) == free[:3]
    for attempt in (1, 2, 3):
        chosen = pick(free[: window(3, attempt)], 3, attempt)
        assert chosen == sorted(chosen) and len(set(chosen)) == 3
        assert set(chosen) <= set(free[: window(3, attempt)])
    assert [window(2, a) for a in range(7)] == [2, 8, 32, 128, 512, 512, 512]


# --- keys --------------------------------------------------------------------------------


addresses_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
addresses_v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@given(st.one_of(st.tuples(addresses_v4, addresses_v4), st.tuples(addresses_v6, addresses_v6)))
def test_address_keys_sort_in_address_order_and_round_trip(pair: tuple[Any, Any]) -> None:
    a, b = pair
    assert (address_key(a) < address_key(b)) == (a < b)
    assert address_from_key(address_key(a)) == a


def networks(version: int) -> st.SearchStrategy[Any]:
    bits = 32 if version == 4 else 128
    shortest = 0 if version == 4 else 8
    make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return st.builds(
        lambda value, length: make((value, length), strict=False),
        st.integers(0, 2**bits - 1),
        st.integers(shortest, bits),
    )


@given(st.one_of(st.tuples(networks(4), networks(4)), st.tuples(networks(6), networks(6))))
def test_the_descendant_range_holds_exactly_the_prefixes_inside(pair: tuple[Any, Any]) -> None:
    outer, other = pair
    assert network_from_key(cidr_key(outer)) == outer
    bounds = descendants_range(outer)
    inside = other != outer and other.subnet_of(outer)
    if bounds is None:
        assert outer.prefixlen == outer.max_prefixlen and not inside
        return
    assert (bounds[0] <= cidr_key(other) <= bounds[1]) == inside


@given(st.one_of(networks(4), networks(6)))
def test_supernets_are_every_containing_prefix_and_itself(network: Any) -> None:
    assume(network.version == 4 or network.prefixlen >= 8)
    found = supernets(network)
    assert found[-1] == network
    assert all(network.subnet_of(s) for s in found)
    assert [s.prefixlen for s in found] == list(range(found[0].prefixlen, network.prefixlen + 1))


def test_direct_children_skip_grandchildren() -> None:
    inside = [
        (net("10.0.0.0/24"), "a"),
        (net("10.0.0.0/25"), "a1"),
        (net("10.0.0.128/26"), "a2"),
        (net("10.0.1.0/24"), "b"),
        (net("10.0.4.0/22"), "c"),
        (net("10.0.5.0/24"), "c1"),
    ]
    assert sorted(inside, key=lambda p: cidr_key(p[0])) == inside  # the Query's order
    assert [pid for _, pid in direct_children(inside)] == ["a", "b", "c"]
    assert direct_children([]) == []


# --- the allocation guard ----------------------------------------------------------------


def test_threshold_count_and_utilisation() -> None:
    assert threshold_count(62, 80) == 50  # 49.6 rounds up: 49/62 = 79.03 %, 50/62 = 80.65 %
    assert threshold_count(100, 80) == 80
    assert threshold_count(6, 50) == 3
    assert threshold_count(1, 1) == 1
    assert threshold_count(2**64 - 1, 80) * 100 >= (2**64 - 1) * 80
    assert utilisation(50, 62) == 80.65
    assert utilisation(0, 62) == 0.0
    assert utilisation(62, 62) == 100.0


def test_guard_modes() -> None:
    assert guard_for(0, 10, 62, 80) == Guard(crosses=False, at_most=39)
    assert guard_for(48, 1, 62, 80) == Guard(crosses=False, at_most=48)
    assert guard_for(49, 1, 62, 80) == Guard(crosses=True, exactly=49)
    assert guard_for(45, 10, 62, 80) == Guard(crosses=True, exactly=45)
    assert guard_for(50, 1, 62, 80) == Guard(crosses=False, at_least=50, at_most=61)
    assert guard_for(61, 1, 62, 80) == Guard(crosses=False, at_least=50, at_most=61)
    with pytest.raises(ConflictError) as refused:
        guard_for(60, 3, 62, 80)
    assert refused.value.code == "PREFIX_EXHAUSTED" and refused.value.status == 409


@given(
    usable=st.integers(1, 300),
    threshold=st.integers(1, 100),
    count=st.integers(1, MAX_ALLOCATION),
    data=st.data(),
)
def test_a_guard_that_admits_the_write_classifies_it_correctly(
    usable: int, threshold: int, count: int, data: Any
) -> None:
    """Whatever other requests committed between the read and the write (the counter moved
    from `read` to `actual`, up or down), the write either fails its condition or is within
    capacity and knows exactly whether it took the prefix from below the threshold to at or
    above it: so the alert goes out once per crossing."""
    read = data.draw(st.integers(0, usable))
    actual = data.draw(st.integers(0, usable))
    try:
        guard = guard_for(read, count, usable, threshold)
    except ConflictError:
        assert read + count > usable
        return
    mark = threshold_count(usable, threshold)
    if guard.admits(actual):
        assert actual + count <= usable
        assert guard.crosses == (actual < mark <= actual + count)
    if actual == read:
        assert guard.admits(actual)  # no interference: the write goes through


def test_only_one_of_two_racing_crossings_commits() -> None:
    first = guard_for(48, 2, 62, 80)
    second = guard_for(48, 2, 62, 80)
    assert first.crosses and second.crosses
    assert first.admits(48)
    assert not second.admits(50)  # after the first commit; it re-reads and no longer crosses
    assert guard_for(50, 2, 62, 80).crosses is False
    above = guard_for(50, 1, 62, 80)
    assert not above.admits(49)  # released below meanwhile: it might cross, so it reads again


# --- requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    ["10.0.0.1/24", "10.0.0.0", "nonsense", "10.0.0.0/33", "2001:db8::/4", "", "10.0.0.0/-1", 5],
)
def test_bad_prefixes_are_refused(prefix: Any) -> None:
    with pytest.raises(pydantic.ValidationError):
        PrefixCreate(vrf_id="0123456789abcdef", prefix=prefix)


def test_prefix_create_canonicalises_and_defaults() -> None:
    body = PrefixCreate(vrf_id="0123456789abcdef", prefix=" 2001:DB8:0::/64 ")
    assert body.prefix == "2001:db8::/64"
    assert body.alert_threshold == 80 and body.is_pool is False
    assert parse_prefix("10.0.0.0/8") == net("10.0.0.0/8")


@pytest.mark.parametrize(
    "changes",
    [
        {"alert_threshold": 0},
        {"alert_threshold": 101},
        {"alert_threshold": "80"},
        {"is_pool": "yes"},
        {"vrf_id": "not-an-id"},
        {"colour": "blue"},
    ],
)
def test_prefix_create_validation(changes: dict[str, Any]) -> None:
    body = {"vrf_id": "0123456789abcdef", "prefix": "10.0.0.0/24", **changes}
    with pytest.raises(pydantic.ValidationError):
        PrefixCreate.model_validate(body)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"count": 0},
        {"count": MAX_ALLOCATION + 1},
        {"count": "2"},
        {"count": 1.5},
        {"count": True},
        {"count": 1, "assigned_to": "service"},
        {"count": 1, "assigned_to": "service:a#b"},
        {"count": 1, "description": "x" * 201},
        {"count": 1, "extra": 1},
    ],
)
def test_allocation_request_validation(body: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        AllocationRequest.model_validate(body)


def test_allocation_fingerprint_and_record_key() -> None:
    one = AllocationRequest(count=2, assigned_to="service:42")
    assert fingerprint("p1", one) == fingerprint(
        "p1", AllocationRequest(count=2, assigned_to="service:42")
    )
    assert fingerprint("p1", one) != fingerprint("p2", one)
    assert fingerprint("p1", one) != fingerprint(
        "p1", AllocationRequest(count=3, assigned_to="service:42")
    )
    assert record_key("abc") == record_key("abc") != record_key("abd")
    assert "#" not in record_key("a#b").split("#", 1)[1]


def test_other_bodies() -> None:
    assert VrfCreate(name="Internet", rd="65000:100").rd == "65000:100"
    for bad in ({"name": ""}, {"name": "a#b"}, {"name": "ok", "rd": "nope"}):
        with pytest.raises(pydantic.ValidationError):
            VrfCreate.model_validate(bad)
    assert PrefixUpdate(alert_threshold=90).model_dump(exclude_unset=True) == {
        "alert_threshold": 90
    }
    assert parse_address(" 10.0.0.5 ") == ip("10.0.0.5")
    for bad in ("10.0.0.0/24", "fe80::1%eth0", "999.0.0.1"):
        with pytest.raises(ValueError):
            parse_address(bad)
