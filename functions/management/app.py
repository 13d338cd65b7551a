"""Management plane: catalog, sign-up, tenants and their lifecycle, subscriptions, usage,
feature flags, partners and platform metrics (HTTP routes), plus the workflow steps."""

from typing import TYPE_CHECKING, Any

from dotmac.core.api import Api, Call, Reply
from dotmac.core.envelope import collection, resource, single
from dotmac.core.lazy import lazy_module
from dotmac.core.pagination import PageRequest

if TYPE_CHECKING:
    from dotmac.core import ratelimit
    from dotmac.management import (
        catalog,
        deprovisioning,
        entitlements,
        flags,
        metrics,
        partners,
        provisioning,
        schemas,
        service,
        subscriptions,
    )
else:  # imported on first use: keeps this module's import (the cold start) cheap
    ratelimit = lazy_module("dotmac.core.ratelimit")
    catalog = lazy_module("dotmac.management.catalog")
    deprovisioning = lazy_module("dotmac.management.deprovisioning")
    entitlements = lazy_module("dotmac.management.entitlements")
    flags = lazy_module("dotmac.management.flags")
    metrics = lazy_module("dotmac.management.metrics")
    partners = lazy_module("dotmac.management.partners")
    provisioning = lazy_module("dotmac.management.provisioning")
    schemas = lazy_module("dotmac.management.schemas")
    service = lazy_module("dotmac.management.service")
    subscriptions = lazy_module("dotmac.management.subscriptions")

api = Api("management")
# The management plane fronts the platform, so it also answers the root `/health/*` probes.
api.add_health_routes("")
app = api.app
PLATFORM, TENANT = "/api/v1/platform", "/api/v1/tenant"
TENANTS = f"{PLATFORM}/tenants"
MANAGE, READ = "platform:tenants:manage", "platform:tenants:read"


@app.lambda_function(name="lifecycle_step")
def lifecycle_step(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions task: one step of the provisioning or deprovisioning workflow."""
    if "request" in event:
        return provisioning.run_step(event)
    return deprovisioning.run_step(event)


def _tenant(call: Call, tenant_id: str, view: dict[str, Any], status: int = 200) -> Reply:
    link = f"{TENANTS}/{tenant_id}"
    headers = {"Location": link} if status == 202 else {}
    return Reply(single(resource("tenant", tenant_id, view), link), status=status, headers=headers)


# --- catalog and sign-up ---------------------------------------------------------------


@api.route(f"{PLATFORM}/apps", public=True, absolute=True, summary="The apps on sale")
def list_apps(call: Call) -> Reply:
    apps = [resource("app", key, a.view()) for key, a in catalog.APPS.items()]
    return Reply(collection(apps, call.request.path, None))


@api.route(f"{PLATFORM}/plans", public=True, absolute=True, summary="Plans, prices, limits")
def list_plans(call: Call) -> Reply:
    plans = [resource("plan", key, p.view()) for key, p in catalog.PLANS.items()]
    return Reply(collection(plans, call.request.path, None))


@api.route("/api/v1/signup", ["POST"], public=True, absolute=True, summary="Self-service sign-up")
def signup(call: Call) -> Reply:
    ratelimit.hit(ratelimit.SIGNUP_PER_IP, call.source_ip)
    body = call.body(schemas.SignupRequest)
    ctx = provisioning.system_context(call.request_id)
    item, _ = service.request_provisioning(ctx, body, call.idempotency_key(required=False))
    return _tenant(call, body.subdomain, service.tenant_view(item), status=202)


# --- tenants (operators) ---------------------------------------------------------------


@api.route(TENANTS, ["POST"], permission=MANAGE, absolute=True, summary="Provision a tenant")
def provision_tenant(call: Call) -> Reply:
    body = call.body(schemas.TenantRequest)
    key = call.idempotency_key(required=False)
    item, _ = service.request_provisioning(call.ctx, body, key)
    return _tenant(call, body.subdomain, service.tenant_view(item), status=202)


@api.route(TENANTS, permission=READ, absolute=True, summary="List tenants (?status=)")
def list_tenants(call: Call) -> Reply:
    page = service.list_tenants(PageRequest.from_query(call.query), call.query.get("status"))
    items = [resource("tenant", i.PK.split("#", 1)[1], service.tenant_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(f"{TENANTS}/{{tenant_id}}", permission=READ, absolute=True, summary="Tenant + steps")
def get_tenant(call: Call, tenant_id: str) -> Reply:
    return _tenant(call, tenant_id, service.tenant_detail(tenant_id))


@api.route(f"{TENANTS}/{{tenant_id}}/suspend", ["POST"], permission=MANAGE, absolute=True)
def suspend_tenant(call: Call, tenant_id: str) -> Reply:
    body = call.body(schemas.StatusChange)
    return _tenant(
        call, tenant_id, service.tenant_view(service.suspend(call.ctx, tenant_id, body.reason))
    )


@api.route(f"{TENANTS}/{{tenant_id}}/reactivate", ["POST"], permission=MANAGE, absolute=True)
def reactivate_tenant(call: Call, tenant_id: str) -> Reply:
    body = call.body(schemas.StatusChange)
    item = service.reactivate(call.ctx, tenant_id, body.reason)
    return _tenant(call, tenant_id, service.tenant_view(item))


@api.route(f"{TENANTS}/{{tenant_id}}/plan", ["PUT"], permission=MANAGE, absolute=True)
def set_tenant_plan(call: Call, tenant_id: str) -> Reply:
    body = call.body(schemas.PlanChange)
    item = subscriptions.change_plan(service.acting_in(call.ctx, tenant_id), body.plan)
    return _tenant(call, tenant_id, service.tenant_view(item))


@api.route(f"{TENANTS}/{{tenant_id}}/deprovision", ["POST"], permission=MANAGE, absolute=True)
def deprovision_tenant(call: Call, tenant_id: str) -> Reply:
    item = service.request_deprovision(call.ctx, tenant_id)
    return _tenant(call, tenant_id, service.tenant_view(item), status=202)


@api.route(f"{PLATFORM}/metrics", permission="platform:metrics:read", absolute=True)
def platform_metrics(call: Call) -> Reply:
    """Tenants by state, subscriptions per app, provisioning figures and a page of usage.

    Calls: 2, the page of tenants (Query), then their usage counters (in each tenant's own
    partition, known once the page is read) with the platform's (one BatchGetItem).

    A page of more than 17 tenants takes one more BatchGetItem per 100 counters.
    """
    figures = metrics.platform_metrics(PageRequest.from_query(call.query))
    return Reply(single(resource("platform_metrics", "current", figures), call.request.path))


# --- the tenant's own subscriptions, plan and usage ------------------------------------


@api.route(f"{TENANT}/subscriptions", permission="tenant:subscriptions:read", absolute=True)
def list_subscriptions(call: Call) -> Reply:
    items = [
        resource("subscription", s.app, subscriptions.subscription_view(s))
        for s in subscriptions.list_subscriptions(call.ctx)
    ]
    return Reply(collection(items, call.request.path, None))


@api.route(
    f"{TENANT}/subscriptions", ["POST"], permission="tenant:subscriptions:manage", absolute=True
)
def subscribe(call: Call) -> Reply:
    app_key = call.body(schemas.SubscriptionRequest).app
    if not subscriptions.subscribe(call.ctx, app_key):
        from dotmac.core.errors import ConflictError

        raise ConflictError(f"already subscribed to {app_key}")
    view = {"app": app_key, "status": "ACTIVE"}
    link = f"{TENANT}/subscriptions/{app_key}"
    return Reply(single(resource("subscription", app_key, view), link), status=201)


@api.route(
    f"{TENANT}/subscriptions/{{app_key}}",
    ["DELETE"],
    permission="tenant:subscriptions:manage",
    absolute=True,
)
def unsubscribe(call: Call, app_key: str) -> Reply:
    subscriptions.unsubscribe(call.ctx, app_key)
    return Reply(None, status=204)


@api.route(f"{TENANT}/plan", ["PUT"], permission="tenant:plan:manage", absolute=True)
def change_plan(call: Call) -> Reply:
    item = subscriptions.change_plan(call.ctx, call.body(schemas.PlanChange).plan)
    return Reply(single(resource("tenant", call.ctx.tenant_id, service.tenant_view(item)), TENANT))


@api.route(f"{TENANT}/usage", permission="tenant:usage:read", absolute=True, summary="Usage")
def usage(call: Call) -> Reply:
    report = entitlements.usage_report(call.ctx)
    return Reply(single(resource("usage", call.ctx.tenant_id, report), call.request.path))


@api.route(f"{TENANT}/flags/{{key}}", permission="identity:self:read", absolute=True)
def evaluate_flag(call: Call, key: str) -> Reply:
    decision = flags.decide(call.ctx, key)
    view = {"enabled": decision.enabled, "variant": decision.variant, "reason": decision.reason}
    return Reply(single(resource("flag_decision", key, view), call.request.path))


# --- feature flags (operators) ---------------------------------------------------------

FLAGS = f"{PLATFORM}/flags"


def _flag(call: Call, item: Any, status: int = 200) -> Reply:
    key = item.SK
    return Reply(single(resource("flag", key, flags.flag_view(item)), f"{FLAGS}/{key}"), status)


@api.route(FLAGS, permission="platform:flags:read", absolute=True, summary="Feature flags")
def list_flags(call: Call) -> Reply:
    page = flags.page_flags(PageRequest.from_query(call.query))
    items = [resource("flag", i.SK, flags.flag_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(FLAGS, ["POST"], permission="platform:flags:manage", absolute=True)
def create_flag(call: Call) -> Reply:
    return _flag(call, flags.create_flag(call.ctx, call.body(flags.FlagCreate)), status=201)


@api.route(f"{FLAGS}/{{key}}", permission="platform:flags:read", absolute=True)
def get_flag(call: Call, key: str) -> Reply:
    return _flag(call, flags.get_flag(key))


@api.route(f"{FLAGS}/{{key}}", ["PATCH"], permission="platform:flags:manage", absolute=True)
def update_flag(call: Call, key: str) -> Reply:
    return _flag(call, flags.update_flag(call.ctx, key, call.body(flags.FlagUpdate)))


@api.route(f"{FLAGS}/{{key}}", ["DELETE"], permission="platform:flags:manage", absolute=True)
def delete_flag(call: Call, key: str) -> Reply:
    flags.delete_flag(call.ctx, key)
    return Reply(None, status=204)


# --- partners (operators) --------------------------------------------------------------

PARTNERS = f"{PLATFORM}/partners"


@api.route(PARTNERS, permission="platform:partners:read", absolute=True, summary="Partners")
def list_partners(call: Call) -> Reply:
    page = partners.list_partners(PageRequest.from_query(call.query))
    items = [
        resource("partner", i.PK.split("#", 1)[1], partners.partner_view(i)) for i in page.items
    ]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(PARTNERS, ["POST"], permission="platform:partners:manage", absolute=True)
def create_partner(call: Call) -> Reply:
    item = partners.create_partner(call.ctx, call.body(partners.PartnerCreate))
    partner_id = item.PK.split("#", 1)[1]
    link = f"{PARTNERS}/{partner_id}"
    return Reply(single(resource("partner", partner_id, partners.partner_view(item)), link), 201)


@api.route(f"{PARTNERS}/{{partner_id}}", permission="platform:partners:read", absolute=True)
def get_partner(call: Call, partner_id: str) -> Reply:
    item = partners.get_partner(partner_id)
    return Reply(
        single(resource("partner", partner_id, partners.partner_view(item)), call.request.path)
    )


@api.route(f"{PARTNERS}/{{partner_id}}/tenants", permission="platform:partners:read", absolute=True)
def partner_tenants(call: Call, partner_id: str) -> Reply:
    page = partners.referred_tenants(partner_id, PageRequest.from_query(call.query))
    items = [resource("tenant", i.PK.split("#", 1)[1], service.tenant_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))
