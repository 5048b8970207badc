"""Custom checkov checks: no wildcard IAM actions.

CKV_GFL_3: aws_iam_policy_document Allow statements name no "*" or "<service>:*" action and
           use no not_actions / not_resources.
CKV_GFL_4: inline IAM policies (aws_iam_policy, aws_iam_role_policy, ...) obey the same rule
           when written as JSON instead of a policy document.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.data.base_check import BaseDataCheck
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import geoflow_rules as rules  # noqa: E402


def _first(d: dict, key: str):
    value = d.get(key)
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _action_problems(effect, actions, not_actions) -> list[str]:
    # Only the action rule: resource "*" is judged by checkov's own CKV_AWS_355/356.
    return [
        p
        for p in rules.statement_violations(effect, actions, not_actions, [], [])
        if "resource" not in p
    ]


class NoWildcardActionsDocument(BaseDataCheck):
    def __init__(self) -> None:
        super().__init__(
            name='Ensure IAM policy documents allow no "*" or "<service>:*" actions',
            id="CKV_GFL_3",
            categories=[CheckCategories.IAM],
            supported_data=["aws_iam_policy_document"],
        )

    def scan_data_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        for stmt in rules.flatten(conf.get("statement", [])):
            if not isinstance(stmt, dict):
                continue
            if _action_problems(_first(stmt, "effect"), stmt.get("actions"), stmt.get("not_actions")):
                return CheckResult.FAILED
        return CheckResult.PASSED


class NoWildcardActionsInline(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name='Ensure inline IAM policies allow no "*" or "<service>:*" actions',
            id="CKV_GFL_4",
            categories=[CheckCategories.IAM],
            supported_resources=[
                "aws_iam_policy",
                "aws_iam_role_policy",
                "aws_iam_user_policy",
                "aws_iam_group_policy",
            ],
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        policy = _first(conf, "policy")
        if isinstance(policy, str):
            try:
                policy = json.loads(policy)
            except ValueError:
                return CheckResult.PASSED  # a reference to a policy document: CKV_GFL_3 covers it
        if not isinstance(policy, dict):
            return CheckResult.PASSED
        for stmt in rules.flatten(policy.get("Statement", [])):
            if isinstance(stmt, dict) and _action_problems(
                stmt.get("Effect"), stmt.get("Action"), stmt.get("NotAction")
            ):
                return CheckResult.FAILED
        return CheckResult.PASSED


check_document = NoWildcardActionsDocument()
check_inline = NoWildcardActionsInline()
