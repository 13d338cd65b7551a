"""Permission strings `app:resource:action` with `*` wildcards (DESIGN §5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dotmac.core.permissions import PUBLIC, allowed, app_of, grants

REQUIRED = "isp:customers:read"
segments = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=10)
permissions = st.builds(lambda a, r, x: f"{a}:{r}:{x}", segments, segments, segments)

MALFORMED = [
    "",
    "isp",
    "isp:customers",
    "isp:customers:read:extra",
    "isp::read",
    ":customers:read",
    "isp:customers:",
    "::",
    ":::",
    PUBLIC,
]


class TestGrants:
    @pytest.mark.parametrize(
        "granted",
        [
            "isp:customers:read",
            "*:customers:read",
            "isp:*:read",
            "isp:customers:*",
            "*:*:read",
            "isp:*:*",
            "*:customers:*",
            "*:*:*",
        ],
    )
    def test_exact_or_wildcard_in_any_segment_grants(self, granted: str) -> None:
        assert grants(granted, REQUIRED)

    @pytest.mark.parametrize(
        "granted",
        [
            "isp:customers:write",
            "crm:customers:read",
            "isp:invoices:read",
            "crm:*:*",
            "*:leads:*",
            "*:*:write",
            "isp:customer:read",  # no prefix matching
            "isp:customers:read-all",
            "is*:customers:read",  # `*` only counts as a whole segment
        ],
    )
    def test_other_permissions_do_not_grant(self, granted: str) -> None:
        assert not grants(granted, REQUIRED)

    def test_wildcard_is_only_special_on_the_granted_side(self) -> None:
        assert not grants("isp:customers:read", "isp:*:read")
        assert grants("isp:*:read", "isp:*:read")

    @pytest.mark.parametrize("bad", MALFORMED)
    def test_malformed_granted_raises(self, bad: str) -> None:
        with pytest.raises(ValueError, match="app:resource:action"):
            grants(bad, REQUIRED)

    @pytest.mark.parametrize("bad", MALFORMED)
    def test_malformed_required_raises(self, bad: str) -> None:
        with pytest.raises(ValueError, match="app:resource:action"):
            grants("*:*:*", bad)

    @given(permissions)
    def test_every_permission_grants_itself_and_superuser_grants_all(self, perm: str) -> None:
        assert grants(perm, perm)
        assert grants("*:*:*", perm)

    @given(permissions, permissions)
    def test_concrete_grants_only_equal_permissions(self, granted: str, required: str) -> None:
        assert grants(granted, required) == (granted == required)


class TestAllowed:
    def test_nothing_granted(self) -> None:
        assert not allowed([], REQUIRED)
        assert not allowed(frozenset(), REQUIRED)

    def test_any_grant_suffices(self) -> None:
        assert allowed(["crm:leads:read", "isp:*:read"], REQUIRED)
        assert allowed(iter(["crm:leads:read", "isp:customers:read"]), REQUIRED)

    def test_none_of_the_grants_match(self) -> None:
        assert not allowed(["crm:*:*", "isp:customers:write", "isp:invoices:*"], REQUIRED)

    def test_malformed_required_raises_even_with_grants(self) -> None:
        with pytest.raises(ValueError):
            allowed(["*:*:*"], "isp:customers")


class TestAppOf:
    @pytest.mark.parametrize(
        ("permission", "app"),
        [("isp:customers:read", "isp"), ("platform:tenants:manage", "platform"), ("*:*:*", "*")],
    )
    def test_app_segment(self, permission: str, app: str) -> None:
        assert app_of(permission) == app

    @pytest.mark.parametrize("bad", MALFORMED)
    def test_malformed_raises(self, bad: str) -> None:
        with pytest.raises(ValueError):
            app_of(bad)
