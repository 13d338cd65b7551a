"""ISP Framework: subscribers, services, IPAM, network, field work (HTTP routes only)."""

from typing import TYPE_CHECKING, Any

from dotmac.core.api import Api, Call, Reply
from dotmac.core.envelope import collection, resource, single
from dotmac.core.lazy import lazy_module
from dotmac.core.pagination import PageRequest

if TYPE_CHECKING:
    from dotmac.isp import ipam
else:  # imported on first use: keeps this module's import (the cold start) cheap
    ipam = lazy_module("dotmac.isp.ipam")

api = Api("isp")
app = api.app

# --- IPAM ----------------------------------------------------------------------------------

IPAM_READ, IPAM_WRITE = "isp:ipam:read", "isp:ipam:write"
VRFS, PREFIXES, ADDRESSES = "/ipam/vrfs", "/ipam/prefixes", "/ipam/ip-addresses"


def _link(path: str) -> str:
    return f"{api.base}{path}"


def _vrf(item: Any, status: int = 200) -> Reply:
    link = _link(f"{VRFS}/{item.SK}")
    headers = {"Location": link} if status == 201 else {}
    return Reply(single(resource("vrf", item.SK, ipam.vrf_view(item)), link), status, headers)


def _prefix(item: Any, status: int = 200) -> Reply:
    link = _link(f"{PREFIXES}/{item.SK}")
    headers = {"Location": link} if status == 201 else {}
    return Reply(single(resource("prefix", item.SK, ipam.prefix_view(item)), link), status, headers)


def _address(view: dict[str, Any]) -> dict[str, Any]:
    return resource("ip_address", view["address"], view)


def _addresses(call: Call, page: Any) -> Reply:
    items = [_address(ipam.address_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(VRFS, permission=IPAM_READ, summary="VRFs")
def list_vrfs(call: Call) -> Reply:
    page = ipam.list_vrfs(call.ctx, PageRequest.from_query(call.query))
    items = [resource("vrf", i.SK, ipam.vrf_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(VRFS, ["POST"], permission=IPAM_WRITE, summary="Create a VRF")
def create_vrf(call: Call) -> Reply:
    return _vrf(ipam.create_vrf(call.ctx, call.body(ipam.VrfCreate)), status=201)


@api.route(f"{VRFS}/{{vrf_id}}", permission=IPAM_READ, summary="A VRF")
def get_vrf(call: Call, vrf_id: str) -> Reply:
    return _vrf(ipam.get_vrf(call.ctx, vrf_id))


@api.route(f"{VRFS}/{{vrf_id}}/ip-addresses", permission=IPAM_READ, summary="A VRF's addresses")
def list_vrf_addresses(call: Call, vrf_id: str) -> Reply:
    page = ipam.list_vrf_addresses(call.ctx, vrf_id, PageRequest.from_query(call.query))
    return _addresses(call, page)


@api.route(f"{VRFS}/{{vrf_id}}/ip-addresses/{{address}}", permission=IPAM_READ)
def get_address(call: Call, vrf_id: str, address: str) -> Reply:
    view = ipam.address_view(ipam.get_address(call.ctx, vrf_id, address))
    return Reply(single(_address(view), call.request.path))


@api.route(f"{VRFS}/{{vrf_id}}/ip-addresses/{{address}}", ["DELETE"], permission=IPAM_WRITE)
def delete_address(call: Call, vrf_id: str, address: str) -> Reply:
    ipam.release(call.ctx, vrf_id, address)
    return Reply(None, status=204)


@api.route(
    f"{VRFS}/{{vrf_id}}/ip-addresses/{{address}}/release",
    ["POST"],
    permission=IPAM_WRITE,
    summary="Release an address",
)
def release_address(call: Call, vrf_id: str, address: str) -> Reply:
    view = {**ipam.address_view(ipam.release(call.ctx, vrf_id, address)), "status": "RELEASED"}
    return Reply(single(_address(view), call.request.path))


@api.route(PREFIXES, permission=IPAM_READ, summary="Prefixes (?vrf_id=)")
def list_prefixes(call: Call) -> Reply:
    query = call.query
    page = ipam.list_prefixes(call.ctx, PageRequest.from_query(query), query.get("vrf_id"))
    items = [resource("prefix", i.SK, ipam.prefix_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(PREFIXES, ["POST"], permission=IPAM_WRITE, summary="Create a prefix")
def create_prefix(call: Call) -> Reply:
    return _prefix(ipam.create_prefix(call.ctx, call.body(ipam.PrefixCreate)), status=201)


@api.route(f"{PREFIXES}/{{prefix_id}}", permission=IPAM_READ, summary="A prefix + utilisation")
def get_prefix(call: Call, prefix_id: str) -> Reply:
    return _prefix(ipam.get_prefix(call.ctx, prefix_id))


@api.route(f"{PREFIXES}/{{prefix_id}}", ["PATCH"], permission=IPAM_WRITE)
def update_prefix(call: Call, prefix_id: str) -> Reply:
    body = call.body(ipam.PrefixUpdate)
    return _prefix(ipam.update_prefix(call.ctx, prefix_id, body))


@api.route(f"{PREFIXES}/{{prefix_id}}", ["DELETE"], permission=IPAM_WRITE)
def delete_prefix(call: Call, prefix_id: str) -> Reply:
    ipam.delete_prefix(call.ctx, prefix_id)
    return Reply(None, status=204)


@api.route(f"{PREFIXES}/{{prefix_id}}/ip-addresses", permission=IPAM_READ)
def list_prefix_addresses(call: Call, prefix_id: str) -> Reply:
    page = ipam.list_prefix_addresses(call.ctx, prefix_id, PageRequest.from_query(call.query))
    return _addresses(call, page)


@api.route(f"{PREFIXES}/{{prefix_id}}/available-ips", permission=IPAM_READ, summary="Next free")
def available_ips(call: Call, prefix_id: str) -> Reply:
    limit = PageRequest.from_query({"limit": call.query.get("limit", "10")}).limit
    found = ipam.available(call.ctx, prefix_id, limit)
    items = [
        resource("available_ip", str(a), {"address": str(a), "family": a.version}) for a in found
    ]
    return Reply(collection(items, call.request.path, None))


@api.route(
    f"{PREFIXES}/{{prefix_id}}/available-ips",
    ["POST"],
    permission=IPAM_WRITE,
    summary="Allocate the next N free addresses (Idempotency-Key honoured)",
)
def allocate_ips(call: Call, prefix_id: str) -> Reply:
    body = call.body(ipam.AllocationRequest)
    key = call.idempotency_key(required=False)
    done = ipam.allocate(call.ctx, prefix_id, body, key)
    headers = {"Idempotent-Replayed": "true"} if done.replayed else {}
    items = [_address(view) for view in done.addresses]
    return Reply(collection(items, call.request.path, None), status=201, headers=headers)


@api.route(ADDRESSES, permission=IPAM_READ, summary="Addresses assigned to ?assigned_to=")
def list_assigned(call: Call) -> Reply:
    assigned_to = call.query.get("assigned_to", "")
    page = ipam.list_assigned(call.ctx, assigned_to, PageRequest.from_query(call.query))
    return _addresses(call, page)
