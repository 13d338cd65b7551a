"""The catalog: the apps DotMac sells and the plans they are sold under (business-rules.md).

Defined in code, versioned with it: every container reads the same catalog without a
DynamoDB call, and a price or limit change is a reviewed commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dotmac.core.errors import FieldError, ValidationError
from dotmac.identity.roles import BUILTIN_ROLES

UNLIMITED = -1
# The metered limits of a plan; `api_calls_per_hour` is a throughput quota, the rest stock.
LIMITS = ("customers", "users", "devices", "api_calls_per_hour", "service_plans")
STOCK_LIMITS = ("customers", "users", "devices", "service_plans")
PLATFORM_FEATURES = ("api_access", "white_label", "reseller_management")
LICENCE_DAYS = 365
GRACE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class App:
    """An app tenants subscribe to."""

    key: str
    name: str
    description: str
    features: tuple[str, ...]

    @property
    def roles(self) -> tuple[str, ...]:
        """The built-in roles this app contributes."""
        return tuple(sorted(r.name for r in BUILTIN_ROLES.values() if r.app == self.key))

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "features": list(self.features),
            "roles": list(self.roles),
        }


@dataclass(frozen=True)
class Plan:
    """A price point: monthly price per subscribed app, limits, and features switched off."""

    key: str
    name: str
    monthly_price_per_app: Decimal
    limits: dict[str, int]
    features_off: frozenset[str] = field(default_factory=frozenset)
    currency: str = "USD"

    def limit(self, name: str) -> int:
        """The limit `name` (-1 unlimited)."""
        return self.limits[name]

    def feature_enabled(self, feature: str) -> bool:
        return feature not in self.features_off

    def view(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "monthly_price_per_app": str(self.monthly_price_per_app),
            "currency": self.currency,
            "limits": dict(self.limits),
            "features_off": sorted(self.features_off),
            "licence_days": LICENCE_DAYS,
        }


APPS: dict[str, App] = {
    app.key: app
    for app in (
        App(
            "isp",
            "ISP Framework",
            "Subscribers, services, IPAM, network, provisioning, field work, tickets, billing",
            (
                "customers",
                "service_plans",
                "ipam",
                "network",
                "provisioning",
                "work_orders",
                "tickets",
                "customer_portal",
                "subscriber_billing",
            ),
        ),
        App(
            "crm",
            "CRM",
            "Leads, contacts, deals and pipelines, activities",
            ("leads", "contacts", "deals", "pipelines", "activities"),
        ),
        App(
            "commerce",
            "E-commerce",
            "Catalog, inventory, carts, orders, storefront",
            ("catalog", "inventory", "orders", "storefront"),
        ),
        App(
            "projects",
            "Project Management",
            "Projects, tasks, milestones, time tracking",
            ("projects", "tasks", "milestones", "time_tracking"),
        ),
    )
}

PLANS: dict[str, Plan] = {
    plan.key: plan
    for plan in (
        Plan(
            "starter",
            "Starter",
            Decimal("49.00"),
            {
                "customers": 100,
                "users": 10,
                "devices": 5,
                "api_calls_per_hour": 1_000,
                "service_plans": 5,
            },
            frozenset({"api_access", "white_label", "reseller_management"}),
        ),
        Plan(
            "professional",
            "Professional",
            Decimal("149.00"),
            {
                "customers": 1_000,
                "users": 50,
                "devices": 25,
                "api_calls_per_hour": 10_000,
                "service_plans": 25,
            },
            frozenset({"white_label", "reseller_management"}),
        ),
        Plan(
            "enterprise",
            "Enterprise",
            Decimal("499.00"),
            {
                "customers": 10_000,
                "users": 500,
                "devices": 100,
                "api_calls_per_hour": 100_000,
                "service_plans": UNLIMITED,
            },
        ),
    )
}


def plan(key: str) -> Plan:
    """The plan `key`; a 400 naming the field when there is none."""
    try:
        return PLANS[key]
    except KeyError:
        raise ValidationError(
            "unknown plan", details=[FieldError("plan", f"one of {', '.join(PLANS)}")]
        ) from None


def check_apps(keys: list[str] | set[str] | frozenset[str]) -> frozenset[str]:
    """`keys` as a set of catalog apps; a 400 naming the unknown ones."""
    unknown = sorted(set(keys) - APPS.keys())
    if unknown:
        raise ValidationError(
            "unknown apps", details=[FieldError("apps", f"unknown: {', '.join(unknown)}")]
        )
    return frozenset(keys)
