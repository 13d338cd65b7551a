"""RBAC across apps, tenant isolation, custom roles and the audit trail, through the gateway."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
    ABC,
    GLOBEX,
    GLOBEX_PASSWORD,
    GLOBEX_USER,
    JANE,
    JOHN,
    MIKE,
    OPERATOR,
    PROBES,
    SARAH,
    TOM,
    Answer,
    Platform,
    decode_unverified,
)

ALL_PROBES = set(PROBES)
PROJECTS = "/api/v1/probe/projects/projects"


def reachable(platform: Platform, token: str) -> dict[str, tuple[int, str | None]]:
    """Status and error code of every probe route for `token`."""
    answers = {path: platform.call("GET", path, token) for path in PROBES}
    return {path: (a.status, a.error_code) for path, a in answers.items()}


def only(paths: set[str], outcome: dict[str, tuple[int, str | None]]) -> None:
    """`paths` answer 200, every other probe 403."""
    assert {p for p, (status, _) in outcome.items() if status == 200} == paths
    assert {status for p, (status, _) in outcome.items() if p not in paths} <= {403}


# --- RBAC and subscriptions ----------------------------------------------------------------


def test_each_demo_user_reaches_exactly_their_apps(platform: Platform) -> None:
    tom = reachable(platform, platform.token(TOM))
    only({"/api/v1/probe/isp/work-orders"}, tom)
    assert tom["/api/v1/probe/isp/customers"] == (403, "FORBIDDEN")
    assert tom["/api/v1/probe/crm/leads"] == (403, "FORBIDDEN")

    mike = reachable(platform, platform.token(MIKE))
    only(
        {
            "/api/v1/probe/crm/leads",
            "/api/v1/probe/crm/deals",
            "/api/v1/probe/commerce/shop",
            "/api/v1/probe/commerce/orders",
        },
        mike,
    )
    isp = [p for p in PROBES if p.startswith("/api/v1/probe/isp/")]
    assert all(mike[p] == (403, "FORBIDDEN") for p in isp)

    jane = reachable(platform, platform.token(JANE))
    only({"/api/v1/probe/isp/portal", "/api/v1/probe/commerce/shop"}, jane)

    sarah = reachable(platform, platform.token(SARAH))
    only({p for p in PROBES if p.startswith(("/api/v1/probe/isp/", "/api/v1/probe/crm/"))}, sarah)

    john = reachable(platform, platform.token(JOHN))
    only(ALL_PROBES - {PROJECTS, "/api/v1/probe/platform/tenants"}, john)
    # ABC Corp has no Project Management: refused whatever the roles.
    assert john[PROJECTS] == (403, "APP_NOT_SUBSCRIBED")
    assert john["/api/v1/probe/platform/tenants"] == (403, "FORBIDDEN")

    # Only the admin (identity:users:*) reads the user list.
    for email in (SARAH, MIKE, JANE, TOM):
        answer = platform.call("GET", "/api/v1/users", platform.token(email))
        assert (answer.status, answer.error_code) == (403, "FORBIDDEN"), email


def test_an_unsubscribed_app_is_refused_even_with_a_matching_role(platform: Platform) -> None:
    """A projects role assigned in ABC Corp grants nothing: the permission never reaches the
    token, and a token that carried it would still meet APP_NOT_SUBSCRIBED."""
    from dotmac.identity import tokens

    john = platform.token(JOHN)
    tom_id = platform.user_id(TOM)
    assigned = platform.call(
        "PUT", f"/api/v1/users/{tom_id}/roles", john, {"roles": ["projects_manager"]}
    )
    assert assigned.status == 200
    tom = platform.token(TOM)
    assert not [p for p in decode_unverified(tom)["perms"] if p.startswith("projects:")]
    assert platform.call("GET", PROJECTS, tom).error_code == "APP_NOT_SUBSCRIBED"

    signed, _ = tokens.issue_access_token(
        subject=tom_id, tenant_id=ABC, roles=["projects_manager"], permissions=["projects:*:*"]
    )
    answer = platform.call("GET", PROJECTS, signed)
    assert (answer.status, answer.error_code) == (403, "APP_NOT_SUBSCRIBED")


def test_the_platform_operator_cannot_read_tenant_users(platform: Platform) -> None:
    operator = platform.token(OPERATOR, tenant="platform")
    assert platform.call("GET", "/api/v1/probe/platform/tenants", operator).status == 200
    john_id = platform.user_id(JOHN)
    answer = platform.call("GET", f"/api/v1/users/{john_id}", operator)
    assert answer.status == 404
    listed = platform.call("GET", "/api/v1/users", operator)
    assert listed.status == 200
    assert [u["attributes"]["email"] for u in listed.json["data"]] == [OPERATOR]
    roles = platform.call("GET", f"/api/v1/users/{john_id}/roles", operator)
    assert roles.status == 404


def test_platform_and_wildcard_permissions_never_reach_a_tenant_token(platform: Platform) -> None:
    john = platform.token(JOHN)
    created = platform.call(
        "POST",
        "/api/v1/roles",
        john,
        {"name": "overlord", "permissions": ["platform:*:*", "*:*:*", "projects:*:*"]},
    )
    assert created.status == 201, created.json
    tom_id = platform.user_id(TOM)
    assert (
        platform.call("PUT", f"/api/v1/users/{tom_id}/roles", john, {"roles": ["overlord"]}).status
        == 200
    )
    tom = platform.token(TOM)
    assert decode_unverified(tom)["perms"] == ["identity:self:read", "identity:self:write"]
    outcome = reachable(platform, tom)
    only(set(), outcome)
    assert outcome["/api/v1/probe/platform/tenants"] == (403, "FORBIDDEN")
    assert platform.call("PUT", f"/api/v1/users/{tom_id}/roles", john, {"roles": []}).status == 200
    assert platform.user_item(TOM).roles is None


# --- custom roles ----------------------------------------------------------------------------


def test_custom_roles_grant_their_permissions_on_the_next_login(platform: Platform) -> None:
    john = platform.token(JOHN)
    tom_id = platform.user_id(TOM)
    before = platform.token(TOM)
    assert platform.call("GET", "/api/v1/probe/isp/customers", before).status == 403

    created = platform.call(
        "POST",
        "/api/v1/roles",
        john,
        {
            "name": "night_shift",
            "description": "Reads customers at night",
            "permissions": ["isp:customers:read", "isp:customers:read"],
        },
    )
    assert created.status == 201, created.json
    assert created.attributes == {
        "description": "Reads customers at night",
        "permissions": ["isp:customers:read"],
        "app": None,
        "builtin": False,
    }
    listed = platform.call("GET", "/api/v1/roles", john).json["data"]
    names = {r["id"]: r["attributes"]["builtin"] for r in listed}
    assert names["night_shift"] is False and names["tenant_admin"] is True

    assigned = platform.call(
        "PUT", f"/api/v1/users/{tom_id}/roles", john, {"roles": ["isp_technician", "night_shift"]}
    )
    assert assigned.status == 200, assigned.json
    assert assigned.attributes["roles"] == ["isp_technician", "night_shift"]
    got = platform.call("GET", f"/api/v1/users/{tom_id}/roles", john)
    assert got.attributes == {"roles": ["isp_technician", "night_shift"]}

    # Tokens are snapshots: the old one keeps its permissions, a new login carries the role.
    assert platform.call("GET", "/api/v1/probe/isp/customers", before).status == 403
    after = platform.token(TOM)
    assert "isp:customers:read" in decode_unverified(after)["perms"]
    only(
        {"/api/v1/probe/isp/work-orders", "/api/v1/probe/isp/customers"},
        reachable(platform, after),
    )

    # Changing the role changes the next login; deleting it takes its permissions away.
    updated = platform.call(
        "PUT", "/api/v1/roles/night_shift", john, {"permissions": ["crm:leads:read"]}
    )
    assert updated.status == 200
    assert updated.attributes["permissions"] == ["crm:leads:read"]
    only(
        {"/api/v1/probe/isp/work-orders", "/api/v1/probe/crm/leads"},
        reachable(platform, platform.token(TOM)),
    )
    assert platform.call("DELETE", "/api/v1/roles/night_shift", john).status == 204
    assert platform.call("GET", "/api/v1/roles/night_shift", john).status == 404
    only({"/api/v1/probe/isp/work-orders"}, reachable(platform, platform.token(TOM)))


def test_role_changes_are_validated_and_built_in_roles_are_fixed(platform: Platform) -> None:
    john = platform.token(JOHN)
    tom_id = platform.user_id(TOM)

    def put_roles(roles: list[str]) -> Answer:
        return platform.call("PUT", f"/api/v1/users/{tom_id}/roles", john, {"roles": roles})

    unknown = put_roles(["isp_technician", "ghost_role"])
    assert (unknown.status, unknown.error_code) == (400, "VALIDATION_ERROR")
    assert unknown.json["error"]["details"] == [{"field": "roles", "message": "ghost_role"}]
    assert put_roles(["platform_operator"]).status == 400
    assert platform.user_item(TOM).roles == {"isp_technician"}  # unchanged

    for bad in (
        {"name": "X", "permissions": ["isp:a:read"]},
        {"name": "ok_name", "permissions": ["isp:customers"]},
        {"name": "ok_name", "permissions": []},
        {"name": "ok_name", "permissions": ["ISP:a:b"]},
    ):
        assert platform.call("POST", "/api/v1/roles", john, bad).status == 400, bad
    clash = platform.call(
        "POST", "/api/v1/roles", john, {"name": "tenant_admin", "permissions": ["isp:*:*"]}
    )
    assert clash.status == 409

    for name in ("tenant_admin", "isp_technician"):
        changed = platform.call("PUT", f"/api/v1/roles/{name}", john, {"description": "mine"})
        assert (changed.status, changed.error_code) == (403, "FORBIDDEN")
        deleted = platform.call("DELETE", f"/api/v1/roles/{name}", john)
        assert (deleted.status, deleted.error_code) == (403, "FORBIDDEN")
    role = platform.call("GET", "/api/v1/roles/isp_technician", john)
    assert role.attributes["permissions"] == ["isp:work_orders:read", "isp:work_orders:write"]
    assert platform.call("GET", "/api/v1/roles", platform.token(TOM)).status == 403
    sarah = platform.token(SARAH)
    assert put_roles(["isp_manager"]).status == 200
    assert platform.call("PUT", f"/api/v1/users/{tom_id}/roles", sarah, {"roles": []}).status == 403


def test_inviting_with_roles_needs_the_role_assignment_permission(platform: Platform) -> None:
    john = platform.token(JOHN)
    clerk = {"name": "user_clerk", "permissions": ["identity:users:read", "identity:users:write"]}
    assert platform.call("POST", "/api/v1/roles", john, clerk).status == 201
    mike_id = platform.user_id(MIKE)
    assert (
        platform.call(
            "PUT", f"/api/v1/users/{mike_id}/roles", john, {"roles": ["user_clerk"]}
        ).status
        == 200
    )
    mike = platform.token(MIKE)
    # Mike cannot assign roles to existing users...
    tom_id = platform.user_id(TOM)
    direct = platform.call(
        "PUT", f"/api/v1/users/{tom_id}/roles", mike, {"roles": ["tenant_admin"]}
    )
    assert direct.status == 403
    # ...so inviting a new tenant admin must be refused as well.
    invited = platform.call(
        "POST",
        "/api/v1/users",
        mike,
        {"email": "sock.puppet@abc-corp.example", "name": "Puppet", "roles": ["tenant_admin"]},
    )
    assert invited.status == 403, invited.json


# --- tenant isolation --------------------------------------------------------------------------


def test_credentials_only_work_in_their_own_tenant(globex: Platform) -> None:
    platform = globex
    assert platform.login(JOHN, tenant=GLOBEX).status == 401
    assert platform.login(GLOBEX_USER, tenant=ABC, password=GLOBEX_PASSWORD).status == 401
    answer = platform.login(GLOBEX_USER, tenant=GLOBEX, password=GLOBEX_PASSWORD)
    assert answer.status == 200
    assert decode_unverified(answer.attributes["access_token"])["tid"] == GLOBEX


def test_the_tenant_can_come_from_the_host(globex: Platform) -> None:
    platform = globex
    host = {"Host": "tenant-abc-corp.dotmac.example"}
    by_host = platform.login(JOHN, tenant=None, headers=host)
    assert by_host.status == 200, by_host.json
    assert decode_unverified(by_host.attributes["access_token"])["tid"] == ABC
    with_port = platform.login(JOHN, tenant=None, headers={"Host": "tenant-abc-corp.x.io:8443"})
    assert with_port.status == 200

    mismatch = platform.login(JOHN, tenant=GLOBEX, headers=host)
    assert (mismatch.status, mismatch.error_code) == (400, "VALIDATION_ERROR")
    assert mismatch.json["error"]["details"][0]["field"] == "tenant"
    assert platform.login(JOHN, tenant=ABC, headers=host).status == 200  # agreeing is fine
    other_host = {"Host": "tenant-globex.dotmac.example"}
    assert platform.login(JOHN, tenant=None, headers=other_host).status == 401
    neither = platform.login(JOHN, tenant=None, headers={"Host": "api.dotmac.example"})
    assert (neither.status, neither.error_code) == (400, "VALIDATION_ERROR")


def test_a_tenant_never_sees_another_tenants_users_or_audit(globex: Platform) -> None:
    platform = globex
    john = platform.token(JOHN)
    wile = platform.token(GLOBEX_USER, tenant=GLOBEX, password=GLOBEX_PASSWORD)
    wile_id = platform.user_id(GLOBEX_USER, tenant=GLOBEX)
    # Globex does some work of its own.
    made = platform.call(
        "POST", "/api/v1/users", wile, {"email": "road@globex.example", "name": "R"}
    )
    assert made.status == 201
    road_id = made.json["data"]["id"]

    for path in (f"/api/v1/users/{wile_id}", f"/api/v1/users/{road_id}/roles"):
        assert platform.call("GET", path, john).status == 404, path
    for method, path, body in (
        ("PATCH", f"/api/v1/users/{wile_id}", {"name": "pwned"}),
        ("POST", f"/api/v1/users/{wile_id}/disable", None),
        ("DELETE", f"/api/v1/users/{road_id}", None),
        ("PUT", f"/api/v1/users/{road_id}/roles", {"roles": []}),
    ):
        assert platform.call(method, path, john, body).status == 404, (method, path)
    assert platform.user_item(GLOBEX_USER, tenant=GLOBEX).name == "wile"
    assert platform.user_item("road@globex.example", tenant=GLOBEX).status == "ACTIVE"

    listed = platform.call("GET", "/api/v1/users?limit=200", john).json["data"]
    emails = {u["attributes"]["email"] for u in listed}
    assert emails == {JOHN, SARAH, MIKE, JANE, TOM}

    globex_ids = {wile_id, road_id}
    trail = platform.call("GET", "/api/v1/audit?limit=200", john).json["data"]
    assert trail, "ABC Corp's own trail is empty: the check below would prove nothing"
    assert not {r["attributes"]["actor"] for r in trail} & globex_ids
    assert not {r["attributes"]["resource_id"] for r in trail} & globex_ids
    by_user = platform.call("GET", f"/api/v1/audit?user={wile_id}", john).json["data"]
    assert by_user == []
    theirs = platform.call("GET", f"/api/v1/audit?user={wile_id}", wile).json["data"]
    assert {r["attributes"]["action"] for r in theirs} >= {"identity.user.create"}

    # A cursor pointing into Globex's partition is refused, not followed.
    forged = base64.urlsafe_b64encode(
        json.dumps(
            {"PK": {"S": "T#globex#USER"}, "SK": {"S": "USER#0"}},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
    ).decode()
    cursor = platform.call("GET", f"/api/v1/users?cursor={forged.rstrip('=')}", john)
    assert cursor.status == 400


# --- audit -------------------------------------------------------------------------------------


def test_mutations_are_audited_with_digests_and_field_names_only(platform: Platform) -> None:
    john = platform.token(JOHN)
    john_id = platform.user_id(JOHN)
    created = platform.call(
        "POST",
        "/api/v1/users",
        john,
        {"email": "bob.secretname@abc-corp.example", "name": "Bob Secretname", "roles": []},
    )
    assert created.status == 201
    bob_id = created.json["data"]["id"]
    request_id = created.header("X-Request-Id")
    renamed = platform.call("PATCH", f"/api/v1/users/{bob_id}", john, {"name": "Robert Hiddenname"})
    assert renamed.status == 200
    assert platform.call("DELETE", f"/api/v1/users/{bob_id}", john).status == 204

    def audit(**query: str) -> list[dict[str, Any]]:
        answer = platform.call("GET", f"/api/v1/audit?{urlencode(query)}", john)
        assert answer.status == 200, answer.json
        return [r["attributes"] for r in answer.json["data"]]

    creations = audit(action="identity.user.create")
    mine = [r for r in creations if r["resource_id"] == bob_id]
    assert len(mine) == 1
    record = mine[0]
    assert record["actor"] == john_id and record["request_id"] == request_id
    assert record["resource_type"] == "user" and record["outcome"] == "ok"
    assert record["before_digest"] is None
    assert len(str(record["after_digest"])) == 64
    assert {"email", "name", "roles"} <= set(record["changed"])

    update = next(r for r in audit(action="identity.user.update") if r["resource_id"] == bob_id)
    assert update["changed"] == ["name"]
    assert update["before_digest"] != update["after_digest"]
    delete = next(r for r in audit(action="identity.user.delete") if r["resource_id"] == bob_id)
    assert delete["after_digest"] is None and len(str(delete["before_digest"])) == 64

    # Newest first; ?user= keeps the actor's records only.
    johns = audit(user=john_id)
    assert johns and {r["actor"] for r in johns} == {john_id}
    assert [r["at"] for r in johns] == sorted((r["at"] for r in johns), reverse=True)
    assert {"identity.user.create", "identity.user.update", "identity.user.delete"} <= {
        r["action"] for r in johns
    }
    both = audit(user=john_id, action="identity.user.update")
    assert [r["action"] for r in both] == ["identity.user.update"]
    # from/to: a window around the update holds the update only.
    window = audit(**{"from": str(update["at"]), "to": str(update["at"])})
    assert [(r["action"], r["resource_id"]) for r in window] == [("identity.user.update", bob_id)]
    after_create = audit(user=john_id, **{"from": str(record["at"])})
    assert {r["action"] for r in after_create} == {
        "identity.user.create",
        "identity.user.update",
        "identity.user.delete",
    }
    assert audit(**{"from": "2000-01-01", "to": "2000-12-31"}) == []

    # No PII in any stored record: values never appear, only digests and field names.
    stored = json.dumps(platform.audit_records(), default=str)
    for value in ("bob.secretname", "Bob Secretname", "Robert Hiddenname", JOHN, "John Smith"):
        assert value not in stored, value
    assert platform.unaudited_mutations() == []
    assert platform.call("GET", "/api/v1/audit", platform.token(SARAH)).status == 403


def test_the_audit_can_be_filtered_by_an_upper_bound_alone(platform: Platform) -> None:
    john = platform.token(JOHN)
    answer = platform.call("GET", "/api/v1/audit?to=2999-01-01", john)
    assert answer.status == 200, answer.json
    everything = platform.call("GET", "/api/v1/audit", john).json["data"]
    # The seeded users' creation and John's sign-in, all before the far-future bound.
    assert answer.json["data"] == everything
    assert {"identity.session.create", "identity.user.create"} <= {
        r["attributes"]["action"] for r in answer.json["data"]
    }
    assert platform.call("GET", "/api/v1/audit?to=2000-01-01", john).json["data"] == []
