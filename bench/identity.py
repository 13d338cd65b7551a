"""Identity bench: what the authorizer costs per request, and the calls a warm request makes.

Runs in one process on in-process moto: the stack is bootstrapped and seeded, John signs in,
then (1) the authorizer verifies his token N times (time per call, AWS calls made), and
(2) `GET /api/v1/auth/me` goes through the whole gateway (authorizer, context, rate limit,
envelope) vs the bare `UserRepository.get` it needs, both against the same emulator.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

N = 300


def _timed(fn: Callable[[], Any], n: int = N) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run() -> dict[str, Any]:
    from stack import counted_aws_calls, seeded_stack

    from devcloud import registry, seed
    from devcloud.gateway import Gateway
    from dotmac.core import ratelimit
    from dotmac.core.tenancy import TenantContext
    from dotmac.identity.authorizer import authorize_token
    from dotmac.identity.repository import UserRepository
    from infra.resources import STACK

    with seeded_stack():
        # The bench measures overhead, not the limiter's refusals.
        ratelimit.API_PER_USER = ratelimit.Limit("api-user", 10**9, 60)
        gateway = Gateway({app: registry.chalice_app(app) for app in STACK.http_apps})
        status, _, body = gateway.handle(
            "POST",
            "/api/v1/auth/login",
            {"Content-Type": "application/json"},
            b'{"tenant":"abc-corp","email":"john.smith@abc-corp.example",'
            b'"password":"' + seed.DEMO_PASSWORD.encode() + b'"}',
        )
        assert status == 200, body
        import json

        token = json.loads(body)["data"]["attributes"]["access_token"]
        header = f"Bearer {token}"
        context = authorize_token(header)  # cold: loads keys, tenant, user state
        user_id = context["sub"]
        with counted_aws_calls() as calls:
            authorizer_seconds = _timed(lambda: authorize_token(header))
            authorizer_calls = sum(calls.values())
            calls.clear()
            headers = {"Authorization": header}
            full = _timed(lambda: gateway.handle("GET", "/api/v1/auth/me", headers, None))
            per_request = {k: v / N for k, v in calls.items()}
            calls.clear()
            repo = UserRepository(TenantContext("abc-corp", user_id))
            bare = _timed(lambda: repo.get(user_id))
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
