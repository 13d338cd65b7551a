"""Identity bench: what the shared authorizer costs per request once warm.

Runs in one process on in-process moto: the stack is bootstrapped and seeded, John signs in
through the gateway, then the authorizer verifies his token N times (median time per call,
and the AWS calls it made: goal 0, the keys, tenant and user state being cached).
"""

from __future__ import annotations

from typing import Any

N = 300


def run() -> dict[str, Any]:
    from stack import Client, aws_calls, gateway, median_seconds, seeded_stack

    from dotmac.identity.authorizer import authorize_token

    with seeded_stack():
        header = Client(gateway(), "john.smith@abc-corp.example").headers["Authorization"]
        authorize_token(header)  # cold: loads keys, tenant, user state
        with aws_calls() as calls:
            seconds = median_seconds(lambda: authorize_token(header), N)
    return {"n": N, "authorizer_us": seconds * 1e6, "aws_calls": sum(calls.counts().values())}
