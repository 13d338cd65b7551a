"""Identity use cases: sign-in, sessions, passwords, MFA, users, roles, the audit trail."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from dotmac.core import audit_trail
from dotmac.core.errors import (
    AuthenticationError,
    ConflictError,
    FieldError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    referenced,
)
from dotmac.core.pagination import PageRequest
from dotmac.core.permissions import allowed
from dotmac.core.repository import Page
from dotmac.core.tenancy import PLATFORM_TENANT, TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.identity import passwords, tokens
from dotmac.identity.models import RoleItem, UserItem
from dotmac.identity.repository import RoleRepository, SessionRepository, UserRepository, now_utc
from dotmac.identity.roles import BUILTIN_ROLES, SELF_PERMISSIONS, Role, expand
from dotmac.identity.schemas import (
    LoginRequest,
    LogoutRequest,
    PasswordChange,
    RoleCreate,
    RoleUpdate,
    UserCreate,
    UserUpdate,
)
from dotmac.management.repository import Tenant, TenantStatus, cached_tenants

MAX_FAILED_LOGINS = 5
LOCK_SECONDS = 30 * 60
ACTIVE, DISABLED = "ACTIVE", "DISABLED"
PASSWORD_CHANGE, MFA_ENROLLMENT = "password_change", "mfa_enrollment"
INVALID_CREDENTIALS = "invalid email or password"
ROLES_ASSIGN = "identity:roles:assign"


@dataclass(frozen=True)
class Session:
    """What a successful login or refresh hands back."""

    access_token: str
    expires_at: int
    refresh_token: str
    restriction: str | None

    def attributes(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": max(0, self.expires_at - int(time.time())),
            "refresh_token": self.refresh_token,
            "restriction": self.restriction,
        }


def user_id_of(user: UserItem) -> str:
    return user.SK.split("#", 1)[1]


def user_view(user: UserItem) -> dict[str, Any]:
    """The public attributes of a user (never the hash or the MFA secret)."""
    return {
        "email": user.email,
        "name": user.name,
        "status": user.status,
        "roles": sorted(user.roles or ()),
        "must_change_password": bool(user.must_change_password),
        "mfa_enabled": bool(user.mfa_enabled),
        "customer_id": user.customer_id,
        "created_at": user.created_at.isoformat(),
        "updated_at": user.updated_at.isoformat(),
    }


def role_view(role: Role) -> dict[str, Any]:
    return {
        "description": role.description,
        "permissions": list(role.permissions),
        "app": role.app,
        "builtin": role.builtin,
    }


def _custom_role(item: RoleItem) -> Role:
    return Role(
        item.SK.split("#", 1)[1], item.description, tuple(map(str, item.permissions)), builtin=False
    )


# --- tenants and permissions -----------------------------------------------------------


def resolve_tenant_slug(body_tenant: str | None, host: str | None) -> str:
    """The tenant named in the body, or by a `tenant-<slug>.` Host; both must agree."""
    from_host = None
    if host:
        label = host.split(".", 1)[0].split(":", 1)[0].lower()
        if label.startswith("tenant-") and "." in host:
            from_host = label.removeprefix("tenant-")
    if body_tenant and from_host and body_tenant != from_host:
        raise ValidationError(
            "the tenant in the body and the host disagree",
            details=[FieldError("tenant", "does not match the host")],
        )
    slug = body_tenant or from_host
    if not slug:
        raise ValidationError("which tenant?", details=[FieldError("tenant", "required")])
    return slug


def _active_tenant(tenant_id: str) -> Tenant:
    """The tenant its users may sign in to: ACTIVE, or SUSPENDED (whose users only reach the
    routes that settle their bills; every other route answers 403 TENANT_SUSPENDED)."""
    tenant = cached_tenants.get(tenant_id)
    if tenant is None:
        raise AuthenticationError(INVALID_CREDENTIALS)
    if tenant.status not in (TenantStatus.ACTIVE, TenantStatus.SUSPENDED):
        raise AuthenticationError(INVALID_CREDENTIALS)  # not (or no longer) a working tenant
    return tenant


def roles_of(tenant_id: str, names: set[str], ctx: TenantContext) -> list[Role]:
    """Resolve role names to roles: built-in ones from code, custom ones from the table."""
    builtin = [BUILTIN_ROLES[n] for n in sorted(names) if n in BUILTIN_ROLES]
    custom_names = sorted(n for n in names if n not in BUILTIN_ROLES)
    custom = [_custom_role(i) for i in RoleRepository(ctx).many(custom_names)]
    return [*builtin, *custom]


def permissions_for(user: UserItem, tenant: Tenant, ctx: TenantContext) -> frozenset[str]:
    roles = roles_of(tenant.tenant_id, set(user.roles or ()), ctx)
    return expand(roles, tenant.apps, platform=tenant.tenant_id == PLATFORM_TENANT)


def _access_token(
    user: UserItem, tenant: Tenant, ctx: TenantContext
) -> tuple[str, int, str | None]:
    """Sign an access token; a temporary password or a missing required MFA enrolment
    restricts it to the caller's own account."""
    restriction = None
    if user.must_change_password:
        restriction = PASSWORD_CHANGE
    elif tenant.mfa_required and not user.mfa_enabled:
        restriction = MFA_ENROLLMENT
    perms = frozenset(SELF_PERMISSIONS) if restriction else permissions_for(user, tenant, ctx)
    access, expires = tokens.issue_access_token(
        subject=user_id_of(user),
        tenant_id=tenant.tenant_id,
        roles=sorted(user.roles or ()),
        permissions=sorted(perms),
        restriction=restriction,
        customer_id=user.customer_id,
    )
    return access, expires, restriction


# --- sign-in and sessions --------------------------------------------------------------


def login(request: LoginRequest, *, host: str | None, request_id: str) -> Session:
    """Check the credentials (and the TOTP code when MFA is on); open a session."""
    tenant = _active_tenant(resolve_tenant_slug(request.tenant, host))
    anonymous = TenantContext(tenant.tenant_id, "anonymous", request_id=request_id)
    users = UserRepository(anonymous)
    user = users.find_by_email(request.email)
    if user is None:
        passwords.burn_time(request.password)
        raise AuthenticationError(INVALID_CREDENTIALS)
    ctx = TenantContext(tenant.tenant_id, user_id_of(user), request_id=request_id)
    now = time.time()
    if user.locked_until and user.locked_until > now:
        raise ForbiddenError(
            "account locked after repeated failed logins",
            code="ACCOUNT_LOCKED",
            headers={"Retry-After": str(int(user.locked_until - now) + 1)},
        )
    if user.status != ACTIVE:
        raise AuthenticationError(INVALID_CREDENTIALS)
    step = None
    ok = passwords.verify_password(user.password_hash, request.password)
    if ok and user.mfa_enabled:
        if request.mfa_code is None:
            raise AuthenticationError("a one-time code is required", code="MFA_REQUIRED")
        secret = _mfa_secret(ctx, user)
        step = passwords.totp_step(
            secret,
            request.mfa_code,
            now=now,
            after_step=None if user.mfa_last_step is None else int(user.mfa_last_step),
        )
        ok = step is not None
    if not ok:
        locked = users.record_failed_login(
            user, max_failures=MAX_FAILED_LOGINS, lock_seconds=LOCK_SECONDS
        )
        audit_trail.record(
            ctx,
            "identity.session.fail",
            "user",
            ctx.user_id,
            after={"locked": locked},
            outcome="denied",
        )
        raise AuthenticationError(INVALID_CREDENTIALS)
    users.record_successful_login(user, totp_step=step)
    access, expires, restriction = _access_token(user, tenant, ctx)
    refresh_token = tokens.new_refresh_token(tenant.tenant_id)
    SessionRepository(ctx).create(ctx.user_id, refresh_token)
    audit_trail.record(ctx, "identity.session.create", "user", ctx.user_id)
    return Session(access, expires, str(refresh_token), restriction)


def refresh(raw_token: str, *, request_id: str) -> Session:
    """Rotate a refresh token; a reused (spent) one revokes its whole session family."""
    presented = tokens.parse_refresh_token(raw_token)
    tenant = _active_tenant(presented.tenant_id)
    anonymous = TenantContext(tenant.tenant_id, "anonymous", request_id=request_id)
    replacement = tokens.new_refresh_token(tenant.tenant_id, presented.family)
    user_id = SessionRepository(anonymous).rotate(presented, replacement)
    ctx = TenantContext(tenant.tenant_id, user_id, request_id=request_id)
    try:
        user = UserRepository(ctx).get(user_id)
    except NotFoundError as exc:
        raise AuthenticationError("session has ended") from exc
    if user.status != ACTIVE:
        SessionRepository(ctx).revoke(presented.family, reason="user disabled")
        raise AuthenticationError("session has ended")
    access, expires, restriction = _access_token(user, tenant, ctx)
    audit_trail.record(ctx, "identity.session.refresh", "user", user_id)
    return Session(access, expires, str(replacement), restriction)


def logout(ctx: TenantContext, request: LogoutRequest) -> int:
    """End this session (by its refresh token) or every session of the caller."""
    sessions = SessionRepository(ctx)
    if request.everywhere:
        ended = sessions.revoke_all(ctx.user_id, reason="logout everywhere")
    elif request.refresh_token:
        presented = tokens.parse_refresh_token(request.refresh_token)
        if presented.tenant_id != ctx.tenant_id or sessions.owner(presented.family) != ctx.user_id:
            raise NotFoundError("no such session")
        sessions.revoke(presented.family, reason="logout")
        ended = 1
    else:
        raise ValidationError(
            "say which session to end",
            details=[FieldError("refresh_token", "required unless everywhere")],
        )
    audit_trail.record(ctx, "identity.session.delete", "user", ctx.user_id, after={"ended": ended})
    return ended


def me(ctx: TenantContext) -> dict[str, Any]:
    """The caller: user, tenant, roles, permissions and subscribed apps."""
    user = UserRepository(ctx).get(ctx.user_id)
    tenant = cached_tenants.get(ctx.tenant_id)
    return {
        "user": {"id": ctx.user_id, **user_view(user)},
        "tenant": {
            "id": ctx.tenant_id,
            "name": tenant.name if tenant else None,
            "plan": tenant.plan if tenant else None,
        },
        "roles": sorted(ctx.roles),
        "permissions": sorted(ctx.permissions),
        "apps": sorted(ctx.apps),
    }


def change_password(ctx: TenantContext, request: PasswordChange) -> None:
    """Replace the caller's password; every other session ends."""
    user = UserRepository(ctx).get(ctx.user_id)
    if not passwords.verify_password(user.password_hash, request.current_password):
        raise ValidationError(
            "current password is wrong", details=[FieldError("current_password", "does not match")]
        )
    passwords.check_policy(request.new_password, field="new_password")
    if request.new_password == request.current_password:
        raise ValidationError(
            "choose a new password", details=[FieldError("new_password", "same as the current one")]
        )
    uow = UnitOfWork(ctx)
    uow.update(
        user,
        [
            UserItem.password_hash.set(passwords.hash_password(request.new_password)),
            UserItem.must_change_password.set(False),
            UserItem.updated_at.set(now_utc()),
        ],
    )
    uow.audit("identity.password.change", "user", ctx.user_id)
    uow.commit()
    SessionRepository(ctx).revoke_all(ctx.user_id, reason="password changed")


# --- MFA -------------------------------------------------------------------------------


def _mfa_secret(ctx: TenantContext, user: UserItem) -> str:
    from dotmac.core import crypto

    if not user.mfa_secret:
        raise ValidationError("no MFA enrolment in progress")
    return crypto.decrypt(ctx.tenant_id, user.mfa_secret)


def enroll_mfa(ctx: TenantContext) -> dict[str, str]:
    """Start TOTP enrolment: a new secret (stored encrypted) and its otpauth URI."""
    from dotmac.core import crypto

    user = UserRepository(ctx).get(ctx.user_id)
    if user.mfa_enabled:
        raise ConflictError("MFA is already enabled")
    secret = passwords.new_totp_secret()
    uow = UnitOfWork(ctx)
    uow.update(
        user,
        [
            UserItem.mfa_secret.set(crypto.encrypt(ctx.tenant_id, secret)),
            UserItem.updated_at.set(now_utc()),
        ],
    )
    uow.audit("identity.mfa.enroll", "user", ctx.user_id)
    uow.commit()
    return {"secret": secret, "otpauth_uri": passwords.totp_uri(secret, user.email, ctx.tenant_id)}


def verify_mfa(ctx: TenantContext, code: str) -> None:
    """Finish enrolment with a valid code; from now on login asks for one."""
    user = UserRepository(ctx).get(ctx.user_id)
    if user.mfa_enabled:
        raise ConflictError("MFA is already enabled")
    step = passwords.totp_step(_mfa_secret(ctx, user), code, now=time.time(), after_step=None)
    if step is None:
        raise ValidationError("wrong code", details=[FieldError("code", "does not match")])
    uow = UnitOfWork(ctx)
    uow.update(
        user,
        [
            UserItem.mfa_enabled.set(True),
            UserItem.mfa_last_step.set(step),
            UserItem.updated_at.set(now_utc()),
        ],
    )
    uow.audit(
        "identity.mfa.enable",
        "user",
        ctx.user_id,
        before={"mfa_enabled": False},
        after={"mfa_enabled": True},
    )
    uow.commit()


# --- users -----------------------------------------------------------------------------


def _check_roles(ctx: TenantContext, names: list[str]) -> set[str]:
    wanted = set(names)
    if "platform_operator" in wanted and not ctx.is_platform:
        raise ValidationError(
            "role not available", details=[FieldError("roles", "platform_operator")]
        )
    custom = {n for n in wanted if n not in BUILTIN_ROLES}
    found = {_custom_role(i).name for i in RoleRepository(ctx).many(sorted(custom))}
    missing = sorted(custom - found)
    if missing:
        raise ValidationError("unknown roles", details=[FieldError("roles", ", ".join(missing))])
    return wanted


def list_users(ctx: TenantContext, page: PageRequest) -> Page[UserItem]:
    return UserRepository(ctx).page(page)


def get_user(ctx: TenantContext, user_id: str) -> UserItem:
    return UserRepository(ctx).get(user_id)


def _check_portal_link(ctx: TenantContext, customer_id: str | None) -> None:
    """A portal link must name a customer of the caller's own tenant (400 otherwise): an id
    from another tenant, or none at all, is refused rather than stored (one GetItem)."""
    if not customer_id:
        return
    from dotmac.isp.customers import CustomerRepository

    referenced(
        "customer_id", "no such customer", lambda: CustomerRepository(ctx).customer(customer_id)
    )


def create_user(
    ctx: TenantContext,
    request: UserCreate,
    *,
    password: str | None = None,
    password_hash: str | None = None,
) -> tuple[UserItem, str | None]:
    """Invite a user with a temporary password they must change (or a given password or
    argon2 hash, for seeding and sign-up); the user counts against the plan's user limit.

    Giving the new user roles needs `identity:roles:assign`, as `PUT /users/{id}/roles` does.
    """
    from dotmac.management import entitlements

    if request.roles and not allowed(ctx.permissions, ROLES_ASSIGN):
        raise ForbiddenError(f"assigning roles needs {ROLES_ASSIGN}")
    roles = _check_roles(ctx, request.roles)
    _check_portal_link(ctx, request.customer_id)
    temporary = None
    if password is not None:
        passwords.check_policy(password)
        password_hash = passwords.hash_password(password)
    elif password_hash is None:
        temporary = passwords.temporary_password()
        password_hash = passwords.hash_password(temporary)
    users = UserRepository(ctx)
    user_id = uuid.uuid4().hex[:16]
    user = users.new_user(
        user_id,
        request.email,
        name=request.name,
        password_hash=password_hash,
        status=ACTIVE,
        roles=roles or None,
        must_change_password=temporary is not None,
        customer_id=request.customer_id,
    )
    uow = UnitOfWork(ctx)
    users.add(uow, user)
    entitlements.stage_increment(uow, ctx, "users")
    uow.audit("identity.user.create", "user", user_id, after=user_view(user))
    uow.commit(conflict=f"a user with email {request.email} already exists")
    return user, temporary


def issue_temporary_password(ctx: TenantContext, email: str) -> str:
    """Give the user with `email` a fresh temporary password they must change at login."""
    user = UserRepository(ctx).find_by_email(email.lower())
    if user is None:
        raise NotFoundError(f"no user {email}")
    temporary = passwords.temporary_password()
    uow = UnitOfWork(ctx)
    uow.update(
        user,
        [
            UserItem.password_hash.set(passwords.hash_password(temporary)),
            UserItem.must_change_password.set(True),
            UserItem.updated_at.set(now_utc()),
        ],
    )
    uow.audit("identity.password.reset", "user", user_id_of(user))
    uow.commit()
    return temporary


def update_user(ctx: TenantContext, user_id: str, request: UserUpdate) -> UserItem:
    users = UserRepository(ctx)
    user = users.get(user_id)
    before = user_view(user)
    actions = [UserItem.updated_at.set(now_utc())]
    if request.name is not None:
        actions.append(UserItem.name.set(request.name))
    if request.status is not None:
        if user_id == ctx.user_id and request.status == DISABLED:
            raise ValidationError(
                "you cannot disable yourself", details=[FieldError("status", "own account")]
            )
        actions.append(UserItem.status.set(request.status))
    if request.customer_id is not None:  # takes effect in the user's next token
        _check_portal_link(ctx, request.customer_id)
        actions.append(UserItem.customer_id.set(request.customer_id))
    uow = UnitOfWork(ctx)
    uow.update(user, actions)
    after = {**before, **request.model_dump(exclude_none=True)}
    uow.audit("identity.user.update", "user", user_id, before=before, after=after)
    uow.commit(conflict="the user changed meanwhile; reload and retry")
    if request.status == DISABLED:
        SessionRepository(ctx).revoke_all(user_id, reason="user disabled")
        _forget_user_state(ctx, user_id)
    return users.get(user_id)


def set_user_roles(ctx: TenantContext, user_id: str, names: list[str]) -> UserItem:
    users = UserRepository(ctx)
    user = users.get(user_id)
    roles = _check_roles(ctx, names)
    before = user_view(user)
    uow = UnitOfWork(ctx)
    roles_action = UserItem.roles.set(roles) if roles else UserItem.roles.remove()
    uow.update(user, [roles_action, UserItem.updated_at.set(now_utc())])
    uow.audit(
        "identity.user_roles.set",
        "user",
        user_id,
        before=before,
        after={**before, "roles": sorted(roles)},
    )
    uow.commit(conflict="the user changed meanwhile; reload and retry")
    return users.get(user_id)


def delete_user(ctx: TenantContext, user_id: str) -> None:
    """Delete a user (freeing a seat of the plan's user limit) and end their sessions."""
    from dotmac.management import entitlements

    if user_id == ctx.user_id:
        raise ValidationError("you cannot delete yourself")
    users = UserRepository(ctx)
    user = users.get(user_id)
    uow = UnitOfWork(ctx)
    users.remove(uow, user)
    entitlements.stage_decrement(uow, ctx, "users")
    uow.audit("identity.user.delete", "user", user_id, before=user_view(user))
    uow.commit()
    SessionRepository(ctx).revoke_all(user_id, reason="user deleted")
    _forget_user_state(ctx, user_id)


def _forget_user_state(ctx: TenantContext, user_id: str) -> None:
    """Make this container's authorizer re-read the user (others do within 30 s)."""
    from dotmac.identity.authorizer import user_states

    user_states.forget(ctx.tenant_id, user_id)


# --- roles -----------------------------------------------------------------------------


def list_roles(ctx: TenantContext) -> list[Role]:
    """Built-in roles plus the tenant's own."""
    return [*BUILTIN_ROLES.values(), *(_custom_role(i) for i in RoleRepository(ctx).all())]


def get_role(ctx: TenantContext, name: str) -> Role:
    if name in BUILTIN_ROLES:
        return BUILTIN_ROLES[name]
    item = RoleRepository(ctx).get(name)
    if item is None:
        raise NotFoundError(f"role {name} not found")
    return _custom_role(item)


def create_role(ctx: TenantContext, request: RoleCreate) -> Role:
    if request.name in BUILTIN_ROLES:
        raise ConflictError(f"{request.name} is a built-in role")
    roles = RoleRepository(ctx)
    item = roles.new_role(request.name, request.description, request.permissions)
    uow = UnitOfWork(ctx)
    uow.put(item, condition=RoleItem.PK.does_not_exist())
    uow.audit("identity.role.create", "role", request.name, after=request.model_dump())
    uow.commit(conflict=f"role {request.name} already exists")
    return _custom_role(item)


def update_role(ctx: TenantContext, name: str, request: RoleUpdate) -> Role:
    if name in BUILTIN_ROLES:
        raise ForbiddenError("built-in roles cannot be changed")
    roles = RoleRepository(ctx)
    item = roles.get(name)
    if item is None:
        raise NotFoundError(f"role {name} not found")
    before = role_view(_custom_role(item))
    actions = []
    if request.description is not None:
        actions.append(RoleItem.description.set(request.description))
    if request.permissions is not None:
        actions.append(RoleItem.permissions.set(request.permissions))  # type: ignore[arg-type]
    if not actions:
        return _custom_role(item)
    uow = UnitOfWork(ctx)
    uow.update(item, actions)
    uow.audit(
        "identity.role.update",
        "role",
        name,
        before=before,
        after={**before, **request.model_dump(exclude_none=True)},
    )
    uow.commit(conflict="the role changed meanwhile; reload and retry")
    return get_role(ctx, name)


def delete_role(ctx: TenantContext, name: str) -> None:
    if name in BUILTIN_ROLES:
        raise ForbiddenError("built-in roles cannot be deleted")
    item = RoleRepository(ctx).get(name)
    if item is None:
        raise NotFoundError(f"role {name} not found")
    uow = UnitOfWork(ctx)
    uow.delete(item)
    uow.audit("identity.role.delete", "role", name, before=role_view(_custom_role(item)))
    uow.commit()


# --- audit -----------------------------------------------------------------------------


def list_audit(ctx: TenantContext, page: PageRequest, query: dict[str, str]) -> Page[Any]:
    """The tenant's audit trail, newest first, filtered by user, action and time."""
    return audit_trail.AuditRepository(ctx).page(
        page,
        user_id=query.get("user") or None,
        action=query.get("action") or None,
        since=query.get("from") or None,
        until=query.get("to") or None,
    )
