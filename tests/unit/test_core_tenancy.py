"""Tenant key builders and `TenantContext`: the code that keeps tenants' key spaces apart."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dotmac.core.errors import ValidationError
from dotmac.core.tenancy import (
    PLATFORM_PREFIXES,
    PLATFORM_TENANT,
    TENANT_ID_PATTERN,
    TenantContext,
    platform_key,
    tenant_key,
    tenant_of_key,
    validate_tenant_id,
)

tenant_ids = st.from_regex(TENANT_ID_PATTERN, fullmatch=True)
key_parts = st.text(min_size=1, max_size=20).filter(lambda s: "#" not in s)

BAD_TENANT_IDS = [
    "",
    "a",  # too short: at least two characters
    "Acme",  # upper case
    "ACME",
    "-acme",  # must start with a letter or digit
    "acme_corp",
    "acme corp",
    "acme#evil",
    "acme\n",
    "ac.me",
    "é-corp",
    "a" * 64,  # longest is 63
]


class TestValidateTenantId:
    @pytest.mark.parametrize("tenant_id", ["ab", "acme", "acme-corp", "0a", "a1-", "a" * 63])
    def test_valid_ids_are_returned(self, tenant_id: str) -> None:
        assert validate_tenant_id(tenant_id) == tenant_id

    @pytest.mark.parametrize("tenant_id", BAD_TENANT_IDS)
    def test_bad_ids_are_a_validation_error(self, tenant_id: str) -> None:
        with pytest.raises(ValidationError) as caught:
            validate_tenant_id(tenant_id)
        assert caught.value.status == 400
        assert caught.value.code == "VALIDATION_ERROR"


class TestTenantKey:
    def test_joins_tenant_and_parts(self) -> None:
        assert tenant_key("acme", "CUSTOMER", "c-1") == "T#acme#CUSTOMER#c-1"

    def test_single_part(self) -> None:
        assert tenant_key("acme", "CUSTOMERS") == "T#acme#CUSTOMERS"

    @pytest.mark.parametrize("tenant_id", BAD_TENANT_IDS)
    def test_bad_tenant_id_refused(self, tenant_id: str) -> None:
        with pytest.raises(ValidationError):
            tenant_key(tenant_id, "CUSTOMER")

    @pytest.mark.parametrize(
        "parts",
        [("",), ("CUSTOMER", ""), ("CUSTOMER#1",), ("#",), ("ok", "T#other")],
    )
    def test_empty_or_separator_parts_refused(self, parts: tuple[str, ...]) -> None:
        with pytest.raises(ValidationError, match="invalid key part"):
            tenant_key("acme", *parts)

    @given(tenant_ids, st.lists(key_parts, min_size=1, max_size=4))
    def test_tenant_of_key_recovers_the_tenant(self, tenant_id: str, parts: list[str]) -> None:
        key = tenant_key(tenant_id, *parts)
        assert key.startswith(f"T#{tenant_id}#")
        assert tenant_of_key(key) == tenant_id


class TestPlatformKey:
    @pytest.mark.parametrize("prefix", sorted(PLATFORM_PREFIXES))
    def test_every_known_prefix(self, prefix: str) -> None:
        assert platform_key(prefix, "x", "y") == f"{prefix}#x#y"

    def test_design_prefixes_are_known(self) -> None:
        # DESIGN §4 names these explicitly.
        assert {"TENANT", "APP", "PLAN", "SUBDOMAIN", "PARTNER"} <= PLATFORM_PREFIXES
        assert "T" not in PLATFORM_PREFIXES

    @pytest.mark.parametrize("prefix", ["T", "tenant", "USER", "", "TENANT#X", "CUSTOMER"])
    def test_unknown_prefix_refused(self, prefix: str) -> None:
        with pytest.raises(ValueError, match="unknown platform key prefix"):
            platform_key(prefix, "x")

    @pytest.mark.parametrize("parts", [("",), ("acme#x",), ("a", "")])
    def test_bad_parts_refused(self, parts: tuple[str, ...]) -> None:
        with pytest.raises(ValidationError):
            platform_key("TENANT", *parts)

    @pytest.mark.parametrize("prefix", sorted(PLATFORM_PREFIXES))
    def test_platform_keys_belong_to_no_tenant(self, prefix: str) -> None:
        assert tenant_of_key(platform_key(prefix, "acme")) is None


class TestTenantOfKey:
    @pytest.mark.parametrize(
        ("key", "tenant"),
        [
            ("T#acme#CUSTOMER#1", "acme"),
            ("T#acme-corp#X", "acme-corp"),
            ("TENANT#acme", None),
            ("APP#isp", None),
            ("t#acme#X", None),
            ("", None),
            ("TX#acme#X", None),
        ],
    )
    def test_tenant_of_key(self, key: str, tenant: str | None) -> None:
        assert tenant_of_key(key) == tenant


class TestTenantContext:
    def test_key_is_inside_own_space(self) -> None:
        ctx = TenantContext(tenant_id="acme", user_id="u1")
        key = ctx.key("CUSTOMER", "c-1")
        assert key == "T#acme#CUSTOMER#c-1"
        assert ctx.owns(key)

    def test_key_refuses_bad_parts(self) -> None:
        ctx = TenantContext(tenant_id="acme", user_id="u1")
        with pytest.raises(ValidationError):
            ctx.key("CUSTOMER#c-1")

    def test_bad_tenant_id_refused_at_construction(self) -> None:
        with pytest.raises(ValidationError):
            TenantContext(tenant_id="Acme", user_id="u1")

    def test_owns_refuses_other_tenants_and_platform_keys(self) -> None:
        ctx = TenantContext(tenant_id="acme", user_id="u1")
        assert not ctx.owns("T#globex#CUSTOMER#1")
        # A tenant id that merely starts with ours is another tenant.
        assert not ctx.owns("T#acme-2#CUSTOMER#1")
        assert not ctx.owns("T#acm#CUSTOMER#1")
        assert not ctx.owns("TENANT#acme")
        assert not ctx.owns("acme")

    def test_is_platform(self) -> None:
        assert TenantContext(tenant_id=PLATFORM_TENANT, user_id="op").is_platform
        assert not TenantContext(tenant_id="acme", user_id="u1").is_platform
        assert not TenantContext(tenant_id="platform-2", user_id="u1").is_platform

    def test_is_frozen(self) -> None:
        ctx = TenantContext(tenant_id="acme", user_id="u1")
        with pytest.raises(AttributeError):
            ctx.tenant_id = "globex"  # type: ignore[misc]

    @given(tenant_ids, tenant_ids, st.lists(key_parts, min_size=1, max_size=4))
    def test_keys_of_one_tenant_never_owned_by_another(
        self, owner: str, other: str, parts: list[str]
    ) -> None:
        assume(owner != other)
        key = TenantContext(tenant_id=owner, user_id="u").key(*parts)
        assert TenantContext(tenant_id=owner, user_id="u").owns(key)
        assert not TenantContext(tenant_id=other, user_id="u").owns(key)
        assert not TenantContext(tenant_id=other, user_id="u").owns(tenant_key(owner, *parts))
