"""Rules shared by the custom checkov policies and the HCL tests.

Pure functions over plain values (no checkov, no hcl2 imports), so both tool chains apply
exactly the same definition of each invariant.
"""

from __future__ import annotations

from typing import Iterable, Optional

WORLD_CIDRS = {"0.0.0.0/0", "::/0"}

# The only ports the internet may reach: the ALB's HTTPS listener and its HTTP redirect.
PUBLIC_PORTS = {80, 443}

POSTGRES_PORT = 5432

# Actions without resource-level permissions: AWS only accepts "*" as their resource.
UNSCOPED_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "ecs:RegisterTaskDefinition",
    "ecs:DescribeTaskDefinition",
}


def to_port(value) -> Optional[int]:
    """An int port, or None when unknown (unresolved expression, missing)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip().strip('"'))
        except ValueError:
            return None
    return None


def flatten(values) -> list:
    out: list = []
    if values is None:
        return out
    if not isinstance(values, (list, tuple, set)):
        return [values]
    for v in values:
        out.extend(flatten(v))
    return out


def is_world(cidr) -> bool:
    return isinstance(cidr, str) and cidr.strip().strip('"') in WORLD_CIDRS


def ingress_violation(protocol, from_port, to_port_, cidrs: Iterable) -> Optional[str]:
    """Why an ingress rule breaks the internet-exposure rule, or None if it does not.

    A rule open to 0.0.0.0/0 or ::/0 may only admit TCP 80 or 443, one port per rule.
    """
    world = sorted({c.strip().strip('"') for c in flatten(list(cidrs)) if is_world(c)})
    if not world:
        return None
    proto = str(protocol if protocol is not None else "tcp").strip('"').lower()
    lo, hi = to_port(from_port), to_port(to_port_)
    where = " and ".join(world)
    if proto in ("-1", "all"):
        return f"all protocols and ports open to {where}"
    if lo is None or hi is None:
        return f"unresolvable port range open to {where}"
    if lo <= POSTGRES_PORT <= hi:
        return f"PostgreSQL port {POSTGRES_PORT} open to {where}"
    if lo != hi or lo not in PUBLIC_PORTS:
        return f"ports {lo}-{hi} open to {where}"
    if proto not in ("tcp", "6"):
        return f"protocol {proto} on port {lo} open to {where}"
    return None


def postgres_world_violation(protocol, from_port, to_port_, cidrs: Iterable) -> Optional[str]:
    reason = ingress_violation(protocol, from_port, to_port_, cidrs)
    if reason is None:
        return None
    if "5432" in reason or "all protocols" in reason or "unresolvable" in reason:
        return reason
    lo, hi = to_port(from_port), to_port(to_port_)
    if lo is not None and hi is not None and lo <= POSTGRES_PORT <= hi:
        return reason
    return None


def is_wildcard_action(action) -> bool:
    """"*" or a whole service ("s3:*"). Prefix patterns such as kms:GenerateDataKey* are allowed."""
    if not isinstance(action, str):
        return False
    a = action.strip().strip('"')
    return a == "*" or a.endswith(":*")


def statement_violations(effect, actions, not_actions, resources, not_resources) -> list[str]:
    """Problems of one policy statement (Deny statements are never a problem)."""
    eff = str(effect if effect is not None else "Allow").strip('"')
    if eff.lower() == "deny":
        return []
    problems = []
    acts = [str(a).strip('"') for a in flatten(actions)]
    for a in acts:
        if is_wildcard_action(a):
            problems.append(f"wildcard action {a!r}")
    if flatten(not_actions):
        problems.append("Allow with not_actions (grants everything else)")
    if flatten(not_resources):
        problems.append("Allow with not_resources")
    res = [str(r).strip('"') for r in flatten(resources)]
    if "*" in res:
        scoped = [a for a in acts if a not in UNSCOPED_ACTIONS]
        if scoped or not acts:
            problems.append(f"resource '*' for actions that can be scoped: {scoped}")
    return problems
