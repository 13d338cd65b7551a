"""Built-in roles and how a user's roles expand into permissions.

Permission strings are `app:resource:action` with `*` segments. Core apps (`identity`,
`tenant`, `platform`) are not subscriptions; the others only count while the tenant
subscribes to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dotmac.core.permissions import CORE_APPS, app_of

SUBSCRIBABLE_APPS = ("isp", "crm", "commerce", "projects")
# What every signed-in user may do to their own account.
SELF_PERMISSIONS = ("identity:self:read", "identity:self:write")


@dataclass(frozen=True)
class Role:
    """A named set of permissions; `app` is None for cross-app roles."""

    name: str
    description: str
    permissions: tuple[str, ...]
    app: str | None = None
    builtin: bool = True


BUILTIN_ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(
            "tenant_admin",
            "Tenant super admin: every permission of every subscribed app",
            ("identity:*:*", "tenant:*:*", *(f"{app}:*:*" for app in SUBSCRIBABLE_APPS)),
        ),
        Role("platform_operator", "Runs the platform", ("platform:*:*", "identity:*:*")),
        Role("isp_manager", "ISP manager", ("isp:*:*",), "isp"),
        Role(
            "isp_technician",
            "Field technician: own work orders",
            ("isp:work_orders:read", "isp:work_orders:write"),
            "isp",
        ),
        Role(
            "isp_customer",
            "ISP subscriber: the customer portal",
            ("isp:portal:read", "isp:portal:write"),
            "isp",
        ),
        Role("crm_manager", "CRM manager", ("crm:*:*",), "crm"),
        Role(
            "crm_sales_rep",
            "Sales rep: leads, contacts, deals",
            ("crm:leads:*", "crm:contacts:*", "crm:deals:*", "crm:activities:*"),
            "crm",
        ),
        Role("commerce_manager", "E-commerce manager", ("commerce:*:*",), "commerce"),
        Role(
            "commerce_customer",
            "Shopper: catalog, own cart and orders",
            ("commerce:shop:read", "commerce:shop:write"),
            "commerce",
        ),
        Role("projects_manager", "Project manager", ("projects:*:*",), "projects"),
        Role(
            "projects_member",
            "Project member: read projects, work on tasks",
            ("projects:projects:read", "projects:tasks:read", "projects:tasks:write"),
            "projects",
        ),
    )
}


def expand(
    roles: Iterable[Role], subscribed_apps: Iterable[str], *, platform: bool = False
) -> frozenset[str]:
    """The permissions `roles` grant in a tenant subscribed to `subscribed_apps`.

    Permissions of apps the tenant does not subscribe to are dropped; a platform
    operator's `platform:` permissions only count in the platform tenant.
    """
    apps = set(subscribed_apps)
    granted = set(SELF_PERMISSIONS)
    for role in roles:
        for permission in role.permissions:
            app = app_of(permission)
            if app == "platform" and not platform:
                continue
            if app in CORE_APPS or app in apps or (app == "*" and platform):
                granted.add(permission)
    return frozenset(granted)
