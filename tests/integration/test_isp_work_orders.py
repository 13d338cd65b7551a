"""Field work orders through the gateway: technician profiles, automatic assignment by score,
the technician's own orders only (check-in/out, notes, photos, completion with a checklist),
bad input, tenant isolation, roles and DynamoDB calls per read."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
    ABC,
    GLOBEX,
    GLOBEX_PASSWORD,
    GLOBEX_USER,
    JOHN,
    SARAH,
    TOM,
    Platform,
)
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.test_isp_customers import Isp, counting, isp_data, items

ANN = "ann@abc-corp.example"
ANN_PASSWORD = "Ann-field-secret-2026"
LAGOS = {"lat": 6.5244, "lon": 3.3792}
NEAR = {"lat": 6.5300, "lon": 3.3800}  # < 1 km from LAGOS
IKEJA = {"lat": 6.6018, "lon": 3.3515}  # ~ 9 km north
INSTALL_SKILLS = ["fiber_splicing", "router_config", "diagnostics"]
CHECKLIST = ["fibre spliced", "router configured", "speed tested"]


def add_technician_user(platform: Platform, email: str = ANN) -> str:
    """A second technician (isp_technician) of ABC Corp with a known password."""
    from dotmac.core.tenancy import TenantContext
    from dotmac.identity import service
    from dotmac.identity.schemas import UserCreate

    ctx = TenantContext(
        ABC, "test-setup", permissions=frozenset({"identity:*:*"}), request_id="test-setup"
    )
    request = UserCreate(email=email, name="Ann", roles=["isp_technician"])
    service.create_user(ctx, request, password=ANN_PASSWORD)
    return platform.user_id(email)


@pytest.fixture
def sarah(platform: Platform) -> Isp:
    return Isp(platform, platform.token(SARAH))


@pytest.fixture
def tom(platform: Platform) -> Isp:
    return Isp(platform, platform.token(TOM))


@pytest.fixture
def ann(platform: Platform) -> Isp:
    add_technician_user(platform)
    return Isp(platform, platform.token(ANN, password=ANN_PASSWORD))


def technician(sarah: Isp, user_id: str, home: dict[str, float], **extra: Any) -> dict[str, Any]:
    body = {"user_id": user_id, "skills": INSTALL_SKILLS, "home": home, "rating": 4.0, **extra}
    return sarah.created("/technicians", body)


def order(sarah: Isp, **overrides: Any) -> dict[str, Any]:
    body = {"type": "repair", "location": NEAR, "checklist": CHECKLIST, **overrides}
    return sarah.created("/work-orders", body)


def installation(platform: Platform) -> str:
    """A PENDING internet service to install (customer and plan made by John)."""
    john = Isp(platform, platform.token(JOHN))
    customer = john.customer()
    plan = john.plan()
    return str(john.created("/services", {"customer_id": customer, "plan_id": plan})["id"])


# --- lifecycle -------------------------------------------------------------------------------


def test_installation_from_creation_to_completion(
    platform: Platform, sarah: Isp, tom: Isp, ann: Isp
) -> None:
    tom_id, ann_id = platform.user_id(TOM), platform.user_id(ANN)
    created = technician(sarah, tom_id, LAGOS, name="Tom")
    assert (created["id"], created["open_orders"], created["completion_rate"]) == (tom_id, 0, 100)
    technician(sarah, ann_id, IKEJA, rating=5.0)  # better rated, ~9 km further away
    number = installation(platform)

    ticket = sarah.created(
        "/tickets", {"subject": "Install fibre", "description": "New subscriber", "priority": "low"}
    )["id"]
    unknown = {"type": "installation", "location": NEAR, "service_number": number}
    refused = sarah.call("POST", "/work-orders", {**unknown, "ticket_id": "TCK-2026-999999"})
    assert (refused.status, refused.json["error"]["details"][0]["field"]) == (400, "ticket_id")
    made = order(sarah, type="installation", service_number=number, ticket_id=ticket)
    work = made["id"]
    assert made["status"] == "NEW" and made["technician_id"] is None
    assert made["required_skills"] == ["fiber_splicing", "router_config"]
    assert made["customer_id"]  # from the service
    assert made["checklist"] == CHECKLIST
    assigned = sarah.call("POST", f"/work-orders/{work}/assign", {})
    assert assigned.status == 200, assigned.json
    view = assigned.attributes
    assert (view["status"], view["technician_id"]) == ("ASSIGNED", tom_id)
    score = view["score"]
    assert score["technician_id"] == tom_id and score["distance_km"] < 1
    assert score["parts"]["skill"] == 100 and score["parts"]["rating"] == 80
    assert view["assignment"] == score
    assert sarah.get(f"/technicians/{tom_id}")["open_orders"] == 1
    assert sarah.get(f"/technicians/{ann_id}")["open_orders"] == 0

    # Tom's app: his list, his order.
    assert [o["id"] for o in tom.call("GET", "/work-orders").json["data"]] == [work]
    assert ann.call("GET", "/work-orders").json["data"] == []
    assert tom.get(f"/work-orders/{work}")["status"] == "ASSIGNED"

    early = tom.call("POST", f"/work-orders/{work}/complete", {"checklist": {}})
    assert (early.status, early.error_code) == (409, "INVALID_STATE")
    checked_in = tom.call("POST", f"/work-orders/{work}/check-in", NEAR)
    assert checked_in.status == 200, checked_in.json
    assert checked_in.attributes["status"] == "IN_PROGRESS"
    assert checked_in.attributes["check_in"]["lat"] == NEAR["lat"]
    assert checked_in.attributes["check_in"]["at"]
    again = tom.call("POST", f"/work-orders/{work}/check-in", NEAR)
    assert (again.status, again.error_code) == (409, "INVALID_STATE")

    noted = tom.call("POST", f"/work-orders/{work}/notes", {"text": "ONT mounted in hallway"})
    assert noted.status == 200, noted.json
    assert [(n["text"], n["by"]) for n in noted.attributes["notes"]] == [
        ("ONT mounted in hallway", tom_id)
    ]
    photo = tom.call("POST", f"/work-orders/{work}/photos", {"content_type": "image/jpeg"})
    assert photo.status == 201, photo.json
    upload = photo.attributes
    assert upload["key"].startswith(f"tenants/{ABC}/work-orders/{work}/photos/")
    assert upload["key"].endswith(".jpg") and upload["method"] == "PUT"
    assert upload["key"] in upload["upload_url"]
    assert [p["key"] for p in tom.get(f"/work-orders/{work}")["photos"]] == [upload["key"]]
    put_photo(platform, upload)

    not_yet = tom.call("POST", f"/work-orders/{work}/complete", {"checklist": {}})
    assert (not_yet.status, not_yet.error_code) == (409, "INVALID_STATE")  # not checked out
    out = tom.call("POST", f"/work-orders/{work}/check-out", LAGOS)
    assert out.status == 200 and out.attributes["check_out"]["lon"] == LAGOS["lon"]
    twice = tom.call("POST", f"/work-orders/{work}/check-out", LAGOS)
    assert (twice.status, twice.error_code) == (409, "INVALID_STATE")
    partial = {"fibre spliced": True, "router configured": False}
    incomplete = tom.call("POST", f"/work-orders/{work}/complete", {"checklist": partial})
    assert (incomplete.status, incomplete.error_code) == (422, "CHECKLIST_INCOMPLETE")
    assert {d["field"] for d in incomplete.json["error"]["details"]} == {
        "checklist.router configured",
        "checklist.speed tested",
    }
    unknown = {**dict.fromkeys(CHECKLIST, True), "coffee": True}
    assert tom.call("POST", f"/work-orders/{work}/complete", {"checklist": unknown}).status == 400
    done = tom.call(
        "POST",
        f"/work-orders/{work}/complete",
        {"checklist": dict.fromkeys(CHECKLIST, True), "note": "customer online"},
    )
    assert done.status == 200, done.json
    assert done.attributes["status"] == "COMPLETED" and done.attributes["completed_at"]
    assert done.attributes["checklist_result"] == dict.fromkeys(CHECKLIST, True)
    assert [n["text"] for n in done.attributes["notes"]][-1] == "customer online"
    stats = sarah.get(f"/technicians/{tom_id}")
    assert (stats["open_orders"], stats["completed"], stats["completion_rate"]) == (0, 1, 100)
    closed = tom.call("POST", f"/work-orders/{work}/notes", {"text": "late"})
    assert (closed.status, closed.error_code) == (409, "INVALID_STATE")

    history = done.attributes["history"]
    sarah_id = platform.user_id(SARAH)
    assert [(h["action"], h["from"], h["to"], h["by"]) for h in history] == [
        ("create", None, "NEW", sarah_id),
        ("assign", "NEW", "ASSIGNED", sarah_id),
        ("check_in", "ASSIGNED", "IN_PROGRESS", tom_id),
        ("check_out", "IN_PROGRESS", "IN_PROGRESS", tom_id),
        ("complete", "IN_PROGRESS", "COMPLETED", tom_id),
    ]
    assert history[2]["details"] == NEAR and all(h["at"] for h in history)
    actions = Counter(r["action"] for r in platform.audit_records() if r["resource_id"] == work)
    assert actions == {
        "isp.work_order.create": 1,
        "isp.work_order.assign": 1,
        "isp.work_order.check_in": 1,
        "isp.work_order.note": 1,
        "isp.work_order.photo": 1,
        "isp.work_order.check_out": 1,
        "isp.work_order.complete": 1,
    }


def put_photo(platform: Platform, upload: dict[str, Any]) -> None:
    """PUT bytes to the presigned URL (moto answers it in-process) and find the object."""
    import requests

    answer = requests.put(
        upload["upload_url"], data=b"\xff\xd8\xff photo", headers=upload["headers"], timeout=10
    )
    assert answer.status_code == 200, answer.text
    from dotmac.core.settings import get_settings

    stored = platform.cloud.client("s3").get_object(Bucket=get_settings().bucket, Key=upload["key"])
    assert stored["Body"].read() == b"\xff\xd8\xff photo"
    assert stored["ContentType"] == "image/jpeg"


# --- assignment rules -------------------------------------------------------------------------


def test_a_repair_from_a_customers_ticket_takes_its_customer(sarah: Isp) -> None:
    customer = sarah.customer()
    ticket = sarah.created(
        "/tickets",
        {"customer_id": customer, "subject": "No signal", "description": "LOS", "priority": "high"},
    )["id"]
    assert order(sarah, ticket_id=ticket)["customer_id"] == customer
    other = sarah.customer(name="Someone else")
    wrong = sarah.call(
        "POST",
        "/work-orders",
        {"type": "repair", "location": NEAR, "ticket_id": ticket, "customer_id": other},
    )
    assert (wrong.status, wrong.json["error"]["details"][0]["field"]) == (400, "customer_id")


def test_only_available_and_skilled_technicians_are_assigned(
    platform: Platform, sarah: Isp, ann: Isp
) -> None:
    tom_id, ann_id = platform.user_id(TOM), platform.user_id(ANN)
    work = order(sarah)["id"]
    none = sarah.call("POST", f"/work-orders/{work}/assign", {})
    assert (none.status, none.error_code) == (409, "NO_TECHNICIAN_AVAILABLE")
    technician(sarah, tom_id, LAGOS, skills=["site_survey"])  # no diagnostics
    technician(sarah, ann_id, IKEJA, available=False)
    none = sarah.call("POST", f"/work-orders/{work}/assign", {})
    assert (none.status, none.error_code) == (409, "NO_TECHNICIAN_AVAILABLE")
    for named in (tom_id, ann_id):
        refused = sarah.call("POST", f"/work-orders/{work}/assign", {"technician_id": named})
        assert (refused.status, refused.error_code) == (409, "TECHNICIAN_NOT_ELIGIBLE"), named
    missing = sarah.call("POST", f"/work-orders/{work}/assign", {"technician_id": "0" * 16})
    assert missing.status == 400

    patched = sarah.call("PATCH", f"/technicians/{ann_id}", {"available": True})
    assert patched.status == 200 and patched.attributes["available"] is True
    chosen = sarah.call("POST", f"/work-orders/{work}/assign", {}).attributes
    assert chosen["technician_id"] == ann_id  # the only eligible one, though further away
    # Tom learns diagnostics; a reassignment without a name moves the order to him.
    sarah.call("PATCH", f"/technicians/{tom_id}", {"skills": ["site_survey", "diagnostics"]})
    moved = sarah.call("POST", f"/work-orders/{work}/assign", {"reason": "closer"}).attributes
    assert moved["technician_id"] == tom_id
    assert sarah.get(f"/technicians/{ann_id}")["open_orders"] == 0
    assert sarah.get(f"/technicians/{tom_id}")["open_orders"] == 1
    # Cancelling gives the workload back; a cancelled order goes nowhere.
    cancelled = sarah.call("POST", f"/work-orders/{work}/cancel", {"reason": "customer moved"})
    assert cancelled.status == 200 and cancelled.attributes["status"] == "CANCELLED"
    tom_stats = sarah.get(f"/technicians/{tom_id}")
    assert (tom_stats["open_orders"], tom_stats["assigned_total"]) == (0, 0)
    for path, body in (("assign", {}), ("cancel", {"reason": "x"})):
        late = sarah.call("POST", f"/work-orders/{work}/{path}", body)
        assert (late.status, late.error_code) == (409, "INVALID_STATE"), path
    assert [h["action"] for h in cancelled.attributes["history"]] == [
        "create",
        "assign",
        "assign",
        "cancel",
    ]
    duplicate = sarah.call("POST", "/technicians", {"user_id": tom_id, "home": LAGOS, "skills": []})
    assert duplicate.status == 409


# --- who sees what ----------------------------------------------------------------------------


def test_a_technician_sees_and_updates_only_their_own_orders(
    platform: Platform, sarah: Isp, tom: Isp, ann: Isp
) -> None:
    tom_id, ann_id = platform.user_id(TOM), platform.user_id(ANN)
    technician(sarah, tom_id, LAGOS)
    technician(sarah, ann_id, IKEJA)
    mine = order(sarah)["id"]
    sarah.call("POST", f"/work-orders/{mine}/assign", {"technician_id": tom_id})
    theirs = order(sarah)["id"]
    assert (
        sarah.call("POST", f"/work-orders/{theirs}/assign", {"technician_id": ann_id}).status == 200
    )
    unassigned = order(sarah)["id"]
    before = items(platform)

    body: Any
    for work in (theirs, unassigned):
        for method, path, body in [
            ("GET", f"/work-orders/{work}", None),
            ("POST", f"/work-orders/{work}/check-in", NEAR),
            ("POST", f"/work-orders/{work}/check-out", NEAR),
            ("POST", f"/work-orders/{work}/notes", {"text": "hi"}),
            ("POST", f"/work-orders/{work}/photos", {"content_type": "image/png"}),
            ("POST", f"/work-orders/{work}/complete", {"checklist": {}}),
        ]:
            answer = tom.call(method, path, body)
            assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    assert [o["id"] for o in tom.call("GET", "/work-orders").json["data"]] == [mine]
    assert [o["id"] for o in ann.call("GET", "/work-orders").json["data"]] == [theirs]
    spying = tom.call("GET", f"/work-orders?technician={ann_id}")
    assert spying.status == 403
    for method, path, body in [
        ("POST", "/work-orders", {"type": "repair", "location": NEAR}),
        ("POST", f"/work-orders/{mine}/assign", {}),
        ("POST", f"/work-orders/{theirs}/assign", {"technician_id": tom_id}),
        ("POST", f"/work-orders/{mine}/cancel", {"reason": "x"}),
        ("GET", "/technicians", None),
        ("GET", f"/technicians/{tom_id}", None),
        ("PATCH", f"/technicians/{tom_id}", {"rating": 5.0}),
        ("POST", "/technicians", {"user_id": tom_id, "home": LAGOS}),
        ("GET", "/customers", None),
        ("GET", "/service-plans", None),
    ]:
        answer = tom.call(method, path, body)
        assert (answer.status, answer.error_code) == (403, "FORBIDDEN"), (method, path)
    assert items(platform) == before

    # A manager sees everything and filters by technician, but does not check in for Ann.
    listed = [o["id"] for o in sarah.call("GET", "/work-orders").json["data"]]
    assert sorted(listed) == sorted([mine, theirs, unassigned])
    by_ann = sarah.call("GET", f"/work-orders?technician={ann_id}").json["data"]
    assert [o["id"] for o in by_ann] == [theirs]
    proxy = sarah.call("POST", f"/work-orders/{theirs}/check-in", NEAR)
    assert (proxy.status, proxy.error_code) == (403, "NOT_ASSIGNEE")
    assert sarah.call("POST", f"/work-orders/{theirs}/notes", {"text": "call first"}).status == 200
    assert ann.call("POST", f"/work-orders/{theirs}/check-in", IKEJA).status == 200
    assert tom.call("POST", f"/work-orders/{mine}/check-in", NEAR).status == 200


def test_another_tenant_gets_404(platform: Platform, globex: Platform, sarah: Isp) -> None:
    tom_id = platform.user_id(TOM)
    technician(sarah, tom_id, LAGOS)
    work = order(sarah)["id"]
    before = items(platform)
    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    for method, path, body in [
        ("GET", f"/work-orders/{work}", None),
        ("POST", f"/work-orders/{work}/assign", {}),
        ("POST", f"/work-orders/{work}/cancel", {"reason": "x"}),
        ("POST", f"/work-orders/{work}/notes", {"text": "x"}),
        ("GET", f"/technicians/{tom_id}", None),
        ("PATCH", f"/technicians/{tom_id}", {"rating": 1.0}),
    ]:
        answer = theirs.call(method, path, body)
        assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    assert theirs.call("GET", "/work-orders").json["data"] == []
    assert theirs.call("GET", "/technicians").json["data"] == []
    # Tom is not a user of Globex: no profile for him there.
    foreign = theirs.call("POST", "/technicians", {"user_id": tom_id, "home": LAGOS})
    assert foreign.status == 400
    assert items(platform) == before


def test_bad_input_is_a_400_and_writes_nothing(platform: Platform, sarah: Isp, tom: Isp) -> None:
    tom_id = platform.user_id(TOM)
    technician(sarah, tom_id, LAGOS)
    work = order(sarah)["id"]
    sarah.call("POST", f"/work-orders/{work}/assign", {"technician_id": tom_id})
    before = items(platform)
    good = {"type": "repair", "location": NEAR}
    bad: list[dict[str, Any]] = [
        {**good, "type": "demolition"},
        {**good, "location": {"lat": 91, "lon": 0}},
        {**good, "location": {"lat": "6.5", "lon": 3.3}},
        {**good, "location": {"lat": 6.5}},
        {**good, "customer_id": "nope"},
        {**good, "customer_id": "0123456789abcdef"},  # no such customer
        {**good, "checklist": ["a", "a"]},
        {**good, "checklist": [""]},
        {**good, "scheduled_for": "2026-05-01T10:00:00"},  # no time zone
        {**good, "status": "COMPLETED"},
        {**good, "type": "installation"},  # an installation names its service
        {**good, "service_number": "INT-20260101-abcdef"},  # no such service
        {"location": NEAR},
    ]
    for body in bad:
        answer = sarah.call("POST", "/work-orders", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
    for body in (
        {"home": LAGOS},
        {"user_id": "0123456789abcdef", "home": LAGOS},  # no such user
        {"user_id": tom_id, "home": LAGOS, "rating": 6},
        {"user_id": tom_id, "home": LAGOS, "skills": ["Fibre Splicing"]},
        {"user_id": tom_id, "home": LAGOS, "available": "yes"},
    ):
        assert sarah.call("POST", "/technicians", body).status == 400, body
    patches: list[dict[str, Any]] = [{}, {"skills": None}, {"rating": -1}, {"open_orders": 0}]
    for patch in patches:
        assert sarah.call("PATCH", f"/technicians/{tom_id}", patch).status == 400, patch
    actions: list[tuple[str, dict[str, Any]]] = [
        ("check-in", {"lat": 0}),
        ("check-in", {"lat": 0, "lon": 200}),
        ("notes", {"text": ""}),
        ("notes", {"text": "x" * 2001}),
        ("photos", {"content_type": "application/pdf"}),
        ("photos", {}),
        ("complete", {"checklist": {"fibre spliced": "yes"}}),
        ("assign", {"technician_id": "tom"}),
        ("cancel", {}),
    ]
    for path, payload in actions:
        caller = sarah if path in ("assign", "cancel") else tom
        answer = caller.call("POST", f"/work-orders/{work}/{path}", payload)
        assert answer.status == 400, (path, payload)
    for query in ("?technician=nope", "?limit=0", "?cursor=nope"):
        assert sarah.call("GET", f"/work-orders{query}").status == 400, query
    for missing in ("0123456789abcdef", "nope"):
        assert sarah.call("GET", f"/work-orders/{missing}").status == 404
        assert sarah.call("POST", f"/work-orders/{missing}/assign", {}).status == 404
        assert tom.call("POST", f"/work-orders/{missing}/check-in", NEAR).status == 404
        assert sarah.call("GET", f"/technicians/{missing}").status == 404
    assert items(platform) == before
    assert sarah.get(f"/work-orders/{work}")["status"] == "ASSIGNED"


def test_numbers_too_fine_for_dynamodb_are_kept_to_seven_decimals(
    platform: Platform, sarah: Isp
) -> None:
    """-1e-308 is a valid latitude but no DynamoDB number (found by API fuzzing: a 500)."""
    tiny = {"lat": -1e-308, "lon": 3.123456789}
    made = technician(sarah, platform.user_id(TOM), tiny, rating=4.000000001)
    assert (made["home"], made["rating"]) == ({"lat": 0.0, "lon": 3.1234568}, 4.0)
    assert order(sarah, location=tiny)["location"] == {"lat": 0.0, "lon": 3.1234568}


def test_reads_make_one_dynamodb_call(platform: Platform, sarah: Isp, tom: Isp) -> None:
    """DESIGN §10: a get (with its history) or a list page is one DynamoDB call, for a
    manager and for the technician (whose scope costs nothing extra)."""
    tom_id = platform.user_id(TOM)
    technician(sarah, tom_id, LAGOS)
    work = order(sarah)["id"]
    for _ in range(3):  # warm the caches a cold container fills on its first requests
        sarah.get(f"/work-orders/{work}")
        tom.call("GET", "/work-orders")
    manager, field = counting(sarah, isp_data), counting(tom, isp_data)
    for path in (f"/work-orders/{work}", "/work-orders", f"/work-orders?technician={tom_id}"):
        assert manager("GET", path)[1] == {"dynamodb:Query": 1}, path
    assert manager("GET", "/technicians")[1] == {"dynamodb:Query": 1}
    assert manager("GET", f"/technicians/{tom_id}")[1] == {"dynamodb:GetItem": 1}
    _, assigned = manager("POST", f"/work-orders/{work}/assign", {})
    assert assigned == {
        "dynamodb:GetItem": 1,  # the order
        "dynamodb:Query": 2,  # the technicians; the answer
        "dynamodb:TransactWriteItems": 1,
    }
    assert field("GET", "/work-orders")[1] == {"dynamodb:Query": 1}
    assert field("GET", f"/work-orders/{work}")[1] == {"dynamodb:Query": 1}
    _, checked_in = field("POST", f"/work-orders/{work}/check-in", NEAR)
    assert checked_in == {
        "dynamodb:GetItem": 1,
        "dynamodb:TransactWriteItems": 1,
        "dynamodb:Query": 1,
    }
    _, created = manager("POST", "/work-orders", {"type": "survey", "location": NEAR})
    assert created == {"dynamodb:TransactWriteItems": 1}
