"""Identity: login, tokens, users, roles and audit (HTTP routes only)."""

from typing import TYPE_CHECKING, Any

from dotmac.core.api import Api, Call, Reply
from dotmac.core.envelope import collection, resource, single
from dotmac.core.lazy import lazy_module
from dotmac.core.pagination import PageRequest

if TYPE_CHECKING:
    from dotmac.core import ratelimit
    from dotmac.identity import keys, schemas, service
else:  # imported on first use: keeps this module's import (the cold start) cheap
    ratelimit = lazy_module("dotmac.core.ratelimit")
    keys = lazy_module("dotmac.identity.keys")
    schemas = lazy_module("dotmac.identity.schemas")
    service = lazy_module("dotmac.identity.service")

api = Api("identity")
app = api.app
# The authorizer Lambda in AWS is this app's `dotmac` authorizer (see infra/resources.py).
dotmac_authorizer = api.authorizer
AUTH, USERS, ROLES = "/api/v1/auth", "/api/v1/users", "/api/v1/roles"


def _session(call: Call, session: Any) -> Reply:
    return Reply(single(resource("session", "current", session.attributes()), call.request.path))


@api.route(f"{AUTH}/login", ["POST"], public=True, absolute=True, summary="Sign in")
def login(call: Call) -> Reply:
    ratelimit.hit(ratelimit.LOGIN_PER_IP, call.source_ip)
    body = call.body(schemas.LoginRequest)
    host = call.request.headers.get("host")
    return _session(call, service.login(body, host=host, request_id=call.request_id))


@api.route(f"{AUTH}/refresh", ["POST"], public=True, absolute=True, summary="Rotate tokens")
def refresh(call: Call) -> Reply:
    body = call.body(schemas.RefreshRequest)
    return _session(call, service.refresh(body.refresh_token, request_id=call.request_id))


@api.route(
    "/.well-known/jwks.json",
    public=True,
    absolute=True,
    enveloped=False,
    summary="Token signing keys",
)
def jwks(call: Call) -> Reply:
    return Reply(keys.keyring.jwks(), headers={"Cache-Control": "public, max-age=300"})


@api.route(f"{AUTH}/logout", ["POST"], permission="identity:self:write", absolute=True)
def logout(call: Call) -> Reply:
    ended = service.logout(call.ctx, call.body(schemas.LogoutRequest))
    return Reply(
        single(resource("logout", call.ctx.user_id, {"sessions_ended": ended}), call.request.path)
    )


@api.route(f"{AUTH}/me", permission="identity:self:read", absolute=True, summary="Who am I")
def me(call: Call) -> Reply:
    return Reply(single(resource("me", call.ctx.user_id, service.me(call.ctx)), call.request.path))


@api.route(f"{AUTH}/password", ["POST"], permission="identity:self:write", absolute=True)
def change_password(call: Call) -> Reply:
    service.change_password(call.ctx, call.body(schemas.PasswordChange))
    return Reply(None, status=204)


@api.route(f"{AUTH}/mfa/enroll", ["POST"], permission="identity:self:write", absolute=True)
def mfa_enroll(call: Call) -> Reply:
    enrolment = service.enroll_mfa(call.ctx)
    return Reply(
        single(resource("mfa_enrolment", call.ctx.user_id, enrolment), call.request.path),
        status=201,
    )


@api.route(f"{AUTH}/mfa/verify", ["POST"], permission="identity:self:write", absolute=True)
def mfa_verify(call: Call) -> Reply:
    service.verify_mfa(call.ctx, call.body(schemas.MfaCode).code)
    return Reply(single(resource("mfa", call.ctx.user_id, {"enabled": True}), call.request.path))


def _user(call: Call, user: Any, status: int = 200, **extra: Any) -> Reply:
    data = resource("user", service.user_id_of(user), {**service.user_view(user), **extra})
    return Reply(single(data, f"{USERS}/{service.user_id_of(user)}"), status=status)


@api.route(USERS, permission="identity:users:read", absolute=True, summary="List users")
def list_users(call: Call) -> Reply:
    page = service.list_users(call.ctx, PageRequest.from_query(call.query))
    items = [resource("user", service.user_id_of(u), service.user_view(u)) for u in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(
    USERS,
    ["POST"],
    permission="identity:users:write",
    absolute=True,
    summary="Invite a user (temporary password, shown once)",
)
def create_user(call: Call) -> Reply:
    user, temporary = service.create_user(call.ctx, call.body(schemas.UserCreate))
    return _user(call, user, 201, temporary_password=temporary)


@api.route(f"{USERS}/{{user_id}}", permission="identity:users:read", absolute=True)
def get_user(call: Call, user_id: str) -> Reply:
    return _user(call, service.get_user(call.ctx, user_id))


@api.route(f"{USERS}/{{user_id}}", ["PATCH"], permission="identity:users:write", absolute=True)
def update_user(call: Call, user_id: str) -> Reply:
    return _user(call, service.update_user(call.ctx, user_id, call.body(schemas.UserUpdate)))


@api.route(
    f"{USERS}/{{user_id}}/disable",
    ["POST"],
    permission="identity:users:write",
    absolute=True,
    summary="Disable a user and end their sessions",
)
def disable_user(call: Call, user_id: str) -> Reply:
    return _user(
        call, service.update_user(call.ctx, user_id, schemas.UserUpdate(status="DISABLED"))
    )


@api.route(f"{USERS}/{{user_id}}", ["DELETE"], permission="identity:users:write", absolute=True)
def delete_user(call: Call, user_id: str) -> Reply:
    service.delete_user(call.ctx, user_id)
    return Reply(None, status=204)


@api.route(f"{USERS}/{{user_id}}/roles", permission="identity:users:read", absolute=True)
def get_user_roles(call: Call, user_id: str) -> Reply:
    user = service.get_user(call.ctx, user_id)
    data = resource("user_roles", user_id, {"roles": sorted(user.roles or ())})
    return Reply(single(data, call.request.path))


@api.route(f"{USERS}/{{user_id}}/roles", ["PUT"], permission="identity:roles:assign", absolute=True)
def set_user_roles(call: Call, user_id: str) -> Reply:
    body = call.body(schemas.RolesAssignment)
    return _user(call, service.set_user_roles(call.ctx, user_id, body.roles))


def _role(call: Call, role: Any, status: int = 200) -> Reply:
    return Reply(
        single(resource("role", role.name, service.role_view(role)), f"{ROLES}/{role.name}"),
        status=status,
    )


@api.route(ROLES, permission="identity:roles:read", absolute=True, summary="Built-in and custom")
def list_roles(call: Call) -> Reply:
    items = [resource("role", r.name, service.role_view(r)) for r in service.list_roles(call.ctx)]
    return Reply(collection(items, call.request.path, None))


@api.route(ROLES, ["POST"], permission="identity:roles:write", absolute=True)
def create_role(call: Call) -> Reply:
    return _role(call, service.create_role(call.ctx, call.body(schemas.RoleCreate)), 201)


@api.route(f"{ROLES}/{{name}}", permission="identity:roles:read", absolute=True)
def get_role(call: Call, name: str) -> Reply:
    return _role(call, service.get_role(call.ctx, name))


@api.route(f"{ROLES}/{{name}}", ["PUT"], permission="identity:roles:write", absolute=True)
def update_role(call: Call, name: str) -> Reply:
    return _role(call, service.update_role(call.ctx, name, call.body(schemas.RoleUpdate)))


@api.route(f"{ROLES}/{{name}}", ["DELETE"], permission="identity:roles:write", absolute=True)
def delete_role(call: Call, name: str) -> Reply:
    service.delete_role(call.ctx, name)
    return Reply(None, status=204)


@api.route(
    "/api/v1/audit",
    permission="identity:audit:read",
    absolute=True,
    summary="The tenant's audit trail (?user=&action=&from=&to=)",
)
def list_audit(call: Call) -> Reply:
    page = service.list_audit(call.ctx, PageRequest.from_query(call.query), call.query)
    items = [
        resource(
            "audit",
            f"{i.SK}",
            {
                "actor": i.actor,
                "action": i.action,
                "resource_type": i.resource_type,
                "resource_id": i.resource_id,
                "request_id": i.request_id,
                "at": i.at,
                "outcome": i.outcome,
                "changed": list(i.changed or []),
                "before_digest": i.before_digest,
                "after_digest": i.after_digest,
            },
        )
        for i in page.items
    ]
    return Reply(collection(items, call.request.path, page.next_cursor))
