"""Custom checkov checks: what the internet may reach.

CKV_GFL_1: ingress from 0.0.0.0/0 or ::/0 only on TCP 80/443 (the ALB listeners).
CKV_GFL_2: PostgreSQL (5432) is never reachable from 0.0.0.0/0 or ::/0 (checkov has no
           built-in rule for this port).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import geoflow_rules as rules  # noqa: E402


def _first(conf: dict, key: str, default=None):
    value = conf.get(key, default)
    if isinstance(value, list):
        return value[0] if value else default
    return value


def _rules(conf: dict[str, list[Any]]):
    """(protocol, from, to, cidrs) for each ingress rule the resource defines."""
    if "ingress" in conf:  # aws_security_group with inline rules
        for block in rules.flatten(conf["ingress"]):
            if isinstance(block, dict):
                yield (
                    _first(block, "protocol"),
                    _first(block, "from_port"),
                    _first(block, "to_port"),
                    rules.flatten(block.get("cidr_blocks")) + rules.flatten(block.get("ipv6_cidr_blocks")),
                )
        return
    if "type" in conf:  # aws_security_group_rule
        if str(_first(conf, "type")).strip('"') == "ingress":
            yield (
                _first(conf, "protocol"),
                _first(conf, "from_port"),
                _first(conf, "to_port"),
                rules.flatten(conf.get("cidr_blocks")) + rules.flatten(conf.get("ipv6_cidr_blocks")),
            )
        return
    if "ip_protocol" in conf:  # aws_vpc_security_group_ingress_rule
        yield (
            _first(conf, "ip_protocol"),
            _first(conf, "from_port"),
            _first(conf, "to_port"),
            rules.flatten(conf.get("cidr_ipv4")) + rules.flatten(conf.get("cidr_ipv6")),
        )


class _IngressCheck(BaseResourceCheck):
    judge = staticmethod(rules.ingress_violation)

    def __init__(self, check_id: str, name: str) -> None:
        super().__init__(
            name=name,
            id=check_id,
            categories=(CheckCategories.NETWORKING,),
            supported_resources=(
                "aws_security_group",
                "aws_security_group_rule",
                "aws_vpc_security_group_ingress_rule",
            ),
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        for protocol, lo, hi, cidrs in _rules(conf):
            if self.judge(protocol, lo, hi, cidrs):
                return CheckResult.FAILED
        return CheckResult.PASSED


class InternetIngressOnlyWeb(_IngressCheck):
    judge = staticmethod(rules.ingress_violation)

    def __init__(self) -> None:
        super().__init__("CKV_GFL_1", "Ensure ingress from 0.0.0.0/0 or ::/0 is limited to TCP 80/443")


class NoWorldPostgres(_IngressCheck):
    judge = staticmethod(rules.postgres_world_violation)

    def __init__(self) -> None:
        super().__init__("CKV_GFL_2", "Ensure PostgreSQL port 5432 is not open to 0.0.0.0/0 or ::/0")


check_internet = InternetIngressOnlyWeb()
check_postgres = NoWorldPostgres()
