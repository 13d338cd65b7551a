"""`PageRequest` and the opaque cursors: bad input is always a 400 `ValidationError`."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dotmac.core.errors import ValidationError
from dotmac.core.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageRequest,
    decode_cursor,
    encode_cursor,
)

PK = "T#acme#CUSTOMERS"
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _field_names(exc: ValidationError) -> list[str]:
    return [d.field for d in exc.details]


# DynamoDB wire-format attribute values as they appear in LastEvaluatedKey.
wire_values = st.one_of(
    st.builds(lambda s: {"S": s}, st.text()),
    st.builds(lambda n: {"N": str(n)}, st.integers()),
)
wire_keys = st.fixed_dictionaries(
    {"PK": st.builds(lambda s: {"S": s}, st.text(min_size=1)), "SK": wire_values},
    optional={"GSI1PK": wire_values, "GSI1SK": wire_values},
)


class TestFromQuery:
    @pytest.mark.parametrize("params", [None, {}, {"other": "x"}])
    def test_defaults(self, params: dict[str, str] | None) -> None:
        page = PageRequest.from_query(params)
        assert page.limit == DEFAULT_LIMIT == 50
        assert page.cursor is None

    def test_empty_cursor_means_first_page(self) -> None:
        assert PageRequest.from_query({"cursor": ""}).cursor is None

    def test_cursor_is_kept(self) -> None:
        assert PageRequest.from_query({"cursor": "abc"}).cursor == "abc"

    @pytest.mark.parametrize(("raw", "limit"), [("1", 1), ("50", 50), ("199", 199), ("200", 200)])
    def test_limits_in_range(self, raw: str, limit: int) -> None:
        assert MAX_LIMIT == 200
        assert PageRequest.from_query({"limit": raw}).limit == limit

    @pytest.mark.parametrize(
        "raw", ["0", "201", "1000", "-1", "", "abc", "1.5", " 5", "5 ", "+5", "1e2", "0x10"]
    )
    def test_bad_limits_are_a_validation_error_on_limit(self, raw: str) -> None:
        with pytest.raises(ValidationError) as caught:
            PageRequest.from_query({"limit": raw})
        assert caught.value.status == 400
        assert _field_names(caught.value) == ["limit"]

    @pytest.mark.parametrize("raw", ["²", "5²"])
    def test_unicode_digit_limit_is_a_validation_error(self, raw: str) -> None:
        with pytest.raises(ValidationError):
            PageRequest.from_query({"limit": raw})

    @given(st.text(max_size=12))
    def test_any_limit_string_is_accepted_in_range_or_refused_with_validation_error(
        self, raw: str
    ) -> None:
        try:
            page = PageRequest.from_query({"limit": raw})
        except ValidationError as exc:
            assert _field_names(exc) == ["limit"]
        else:
            assert 1 <= page.limit <= MAX_LIMIT


class TestCursorRoundTrip:
    def test_none_and_empty_key_mean_no_next_page(self) -> None:
        assert encode_cursor(None) is None
        assert encode_cursor({}) is None

    def test_round_trip_example(self) -> None:
        key = {"PK": {"S": PK}, "SK": {"S": "CUSTOMER#c-1"}}
        cursor = encode_cursor(key)
        assert cursor is not None
        assert URL_SAFE.fullmatch(cursor)
        assert "=" not in cursor
        assert decode_cursor(cursor) == key

    @given(wire_keys)
    def test_round_trip(self, key: dict[str, Any]) -> None:
        cursor = encode_cursor(key)
        assert cursor is not None
        assert URL_SAFE.fullmatch(cursor)
        assert decode_cursor(cursor) == key

    def test_encoding_is_independent_of_key_order(self) -> None:
        a = {"PK": {"S": PK}, "SK": {"S": "x"}}
        b = {"SK": {"S": "x"}, "PK": {"S": PK}}
        assert encode_cursor(a) == encode_cursor(b)


class TestBadCursors:
    @pytest.mark.parametrize(
        "cursor",
        [
            "",
            "!!!",
            "not a cursor",
            "\ud800",  # lone surrogate: cannot even be encoded
            "é",
            "A",  # impossible base64 length
            _b64(b"not json"),
            _b64(b"\xff\xfe\xfa"),  # not UTF-8
            _b64(b"[1, 2]"),  # JSON, but not an object
            _b64(b"null"),
            _b64(b'"PK"'),
            _b64(b"42"),
            _b64(b'{"PK": {"S": "T#acme#X"}'),  # truncated
        ],
    )
    def test_garbage_is_a_validation_error_on_cursor(self, cursor: str) -> None:
        with pytest.raises(ValidationError) as caught:
            decode_cursor(cursor)
        assert caught.value.status == 400
        assert _field_names(caught.value) == ["cursor"]

    def test_truncated_real_cursor_refused(self) -> None:
        cursor = encode_cursor({"PK": {"S": PK}, "SK": {"S": "CUSTOMER#c-1"}})
        assert cursor is not None
        with pytest.raises(ValidationError):
            decode_cursor(cursor[:-3])

    @given(st.text())
    def test_fuzz_text_decodes_to_a_dict_or_validation_error(self, cursor: str) -> None:
        try:
            key = decode_cursor(cursor)
        except ValidationError as exc:
            assert _field_names(exc) == ["cursor"]
        else:
            assert isinstance(key, dict)
            assert all(isinstance(k, str) for k in key)

    @given(st.binary())
    def test_fuzz_tampered_payload_decodes_to_a_dict_or_validation_error(self, raw: bytes) -> None:
        try:
            key = decode_cursor(_b64(raw))
        except ValidationError:
            return
        assert isinstance(key, dict)

    @given(
        st.recursive(
            st.none() | st.integers() | st.text(),
            lambda c: st.lists(c) | st.dictionaries(st.text(), c),
            max_leaves=12,
        )
    )
    def test_fuzz_any_json_decodes_to_a_dict_or_validation_error(self, value: Any) -> None:
        try:
            key = decode_cursor(_b64(json.dumps(value).encode()))
        except ValidationError:
            assert not isinstance(value, dict)
        else:
            assert key == value

    def test_deeply_nested_cursor_is_a_validation_error(self) -> None:
        cursor = _b64(b'{"PK":' + b"[" * 5000)
        with pytest.raises(ValidationError):
            decode_cursor(cursor)


class TestStartKey:
    def test_first_page_has_no_start_key(self) -> None:
        assert PageRequest().start_key(PK) is None

    def test_cursor_of_the_same_partition(self) -> None:
        key = {"PK": {"S": PK}, "SK": {"S": "CUSTOMER#c-9"}}
        page = PageRequest.from_query({"cursor": encode_cursor(key) or ""})
        assert page.start_key(PK) == key

    @pytest.mark.parametrize(
        "other_pk",
        ["T#globex#CUSTOMERS", "T#acme#INVOICES", "T#acme#CUSTOMERS#x", "TENANT#acme"],
    )
    def test_cursor_of_another_partition_refused(self, other_pk: str) -> None:
        cursor = encode_cursor({"PK": {"S": other_pk}, "SK": {"S": "CUSTOMER#c-9"}})
        page = PageRequest(cursor=cursor)
        with pytest.raises(ValidationError) as caught:
            page.start_key(PK)
        assert _field_names(caught.value) == ["cursor"]

    @pytest.mark.parametrize(
        "key",
        [
            {"SK": {"S": "x"}},  # no partition attribute at all
            {"PK": PK, "SK": {"S": "x"}},  # not wire format
            {"PK": {"N": PK}, "SK": {"S": "x"}},  # wrong type tag
            {"PK": {"S": PK, "extra": "1"}},
        ],
    )
    def test_cursor_without_a_matching_wire_partition_refused(self, key: dict[str, Any]) -> None:
        page = PageRequest(cursor=encode_cursor(key))
        with pytest.raises(ValidationError):
            page.start_key(PK)

    def test_garbage_cursor_refused_by_start_key(self) -> None:
        with pytest.raises(ValidationError):
            PageRequest(cursor="%%%").start_key(PK)

    def test_index_partition_attribute(self) -> None:
        gsi_pk = "T#acme#EMAIL#a@b.c"
        key = {"PK": {"S": PK}, "SK": {"S": "x"}, "GSI1PK": {"S": gsi_pk}, "GSI1SK": {"S": "y"}}
        page = PageRequest(cursor=encode_cursor(key))
        assert page.start_key(gsi_pk, pk_attribute="GSI1PK") == key
        with pytest.raises(ValidationError):
            page.start_key(PK, pk_attribute="GSI1PK")

    @given(wire_keys, st.text(min_size=1))
    def test_cursor_is_only_valid_for_its_own_partition(
        self, key: dict[str, Any], other: str
    ) -> None:
        own = key["PK"]["S"]
        page = PageRequest(cursor=encode_cursor(key))
        assert page.start_key(own) == key
        assume(other != own)
        with pytest.raises(ValidationError):
            page.start_key(other)
