"""The real tree satisfies every invariant."""

import pytest

import tfinvariants as inv

ROOT = inv.ROOT
MODULES = ROOT / "modules"


def ok(violations):
    assert violations == [], "\n".join(violations)


def test_required_modules_exist():
    have = {p.name for p in inv.module_dirs()}
    assert inv.REQUIRED_MODULES <= have, sorted(inv.REQUIRED_MODULES - have)


@pytest.mark.parametrize("module", inv.module_dirs(), ids=lambda p: p.name)
def test_module_shape(module):
    ok(inv.module_shape_violations(module))


@pytest.mark.parametrize("config", inv.all_config_dirs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_references_resolve(config):
    ok(inv.reference_violations(config))


@pytest.mark.parametrize("module", inv.module_dirs(), ids=lambda p: p.name)
def test_resources_carry_tags(module):
    ok(inv.tag_violations(module))


def test_no_world_ingress_except_alb_web_ports():
    ok(inv.world_ingress_everywhere())


def test_security_group_chain_in_service():
    ok(inv.service_chain_violations(MODULES / "service"))


def test_database_ingress_only_from_tasks():
    ok(inv.database_chain_violations(MODULES / "database"))


@pytest.mark.parametrize("env", inv.env_dirs(), ids=lambda p: p.name)
def test_env_wires_task_groups_into_database(env):
    ok(inv.env_chain_violations(env))


def test_no_wildcard_actions_or_needless_wildcard_resources():
    ok(inv.iam_everywhere())


def test_one_task_role_per_service_with_listed_permissions_only():
    ok(inv.task_role_violations(MODULES / "service"))


def test_only_execution_role_reads_secrets():
    ok(inv.secret_readers_everywhere())


def test_containers_read_only_non_root_and_stop_timeout_above_grace_period():
    ok(inv.container_violations(MODULES / "service"))


@pytest.mark.parametrize("env", inv.env_dirs(), ids=lambda p: p.name)
def test_envs_keep_stop_timeout(env):
    ok(inv.env_stop_timeout_violations(env))


def test_queue_has_dlq_kms_and_bucket_only_policy():
    ok(inv.queue_violations(MODULES / "queue"))


def test_bucket_versioned_kms_private_tls_lifecycle_logged_notifying():
    ok(inv.bucket_violations(MODULES / "storage"))


def test_database_encrypted_private_tls_managed_credentials():
    ok(inv.database_violations(MODULES / "database"))


def test_network_endpoints_no_nat():
    ok(inv.network_violations(MODULES / "network"))


def test_alb_https_redirect_health_and_deployments():
    ok(inv.alb_violations(MODULES / "service"))


def test_environments_differ_only_in_settings():
    ok(inv.env_violations())


def test_deploy_role_trusts_only_this_repository_environment():
    cfg = inv.load(MODULES / "ci-access")
    body = cfg.data["aws_iam_policy_document"]["assume"]
    conds = {c["variable"]: c for s in inv._blocks(body["statement"]) for c in inv._blocks(s["condition"])}
    sub = conds["token.actions.githubusercontent.com:sub"]
    assert sub["test"] == "StringEquals"
    assert inv.unwrap(sub["values"]) == "local.subjects"
    assert "repo:${var.github_repository}:environment:${e}" in cfg.locals["subjects"]
    assert conds["token.actions.githubusercontent.com:aud"]["values"] == ["sts.amazonaws.com"]
    assert "aws_iam_access_key" not in {t for d in inv.all_config_dirs() for t in inv.load(d).resources}
