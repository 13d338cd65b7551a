"""Identity bench: what the authorizer costs per request, and the calls a warm request makes.

Runs in one process on in-process moto: the stack is bootstrapped and seeded, John signs in,
then (1) the authorizer verifies his token N times (time per call, AWS calls made), and
(2) `GET /api/v1/auth/me` goes through the whole gateway (authorizer, context, rate limit,
envelope) vs the bare `UserRepository.get` it needs, both against the same emulator.
"""

from __future__ import annotations

from typing import Any

N = 300


def run() -> dict[str, Any]:
    from stack import bearer, counted_aws_calls, gateway, median_seconds, seeded_stack

    from dotmac.core import ratelimit
    from dotmac.core.tenancy import TenantContext
    from dotmac.identity.authorizer import authorize_token
    from dotmac.identity.repository import UserRepository

    with seeded_stack():
        # The bench measures overhead, not the limiter's refusals.
        ratelimit.API_PER_USER = ratelimit.Limit("api-user", 10**9, 60)
        through = gateway()
        header = bearer(through, "john.smith@abc-corp.example")
        context = authorize_token(header)  # cold: loads keys, tenant, user state
        user_id = context["sub"]
        with counted_aws_calls() as calls:
            authorizer_seconds = median_seconds(lambda: authorize_token(header), N)
            authorizer_calls = sum(calls.values())
            calls.clear()
            headers = {"Authorization": header}
            full = median_seconds(
                lambda: through.handle("GET", "/api/v1/auth/me", headers, None), N
            )
            per_request = {k: v / N for k, v in calls.items()}
            calls.clear()
            repo = UserRepository(TenantContext("abc-corp", user_id))
            bare = median_seconds(lambda: repo.get(user_id), N)
            bare_calls = {k: v / N for k, v in calls.items()}
    return {
        "authorizer_us": authorizer_seconds * 1e6,
        "authorizer_aws_calls_warm": authorizer_calls,
        "me_full_ms": full * 1000,
        "me_bare_ms": bare * 1000,
        "me_overhead_ratio": full / bare,
        "me_calls_per_request": per_request,
        "bare_calls_per_request": bare_calls,
    }


def report(result: dict[str, Any]) -> None:
    print(f"\nIdentity (in-process moto, median of {N})")
    print(
        f"  authorizer verify (ES256 + cached tenant/user): {result['authorizer_us']:.0f} us,"
        f" AWS calls on the warm path: {result['authorizer_aws_calls_warm']} (goal 0)"
    )
    print(
        f"  GET /api/v1/auth/me through the gateway: {result['me_full_ms']:.2f} ms,"
        f" bare UserRepository.get: {result['me_bare_ms']:.2f} ms,"
        f" ratio {result['me_overhead_ratio']:.2f}x (bar 1.3x)"
    )
    print(
        f"  calls per request: {result['me_calls_per_request']}"
        f" (bare: {result['bare_calls_per_request']})"
    )
