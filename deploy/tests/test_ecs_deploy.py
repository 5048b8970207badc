"""deploy/ecs-deploy against a stand-in `aws` CLI: the rollout order, and the rollback."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
REPO = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/geoflow-prod"
FAMILIES = {"api": "geoflow-prod-api", "worker": "geoflow-prod-worker", "report": "geoflow-prod-report"}
SERVICES = {"api": "api", "worker": "worker"}

TF_OUTPUTS = {
    "cluster_name": {"value": "geoflow-prod"},
    "alb_dns_name": {"value": "geoflow-prod-alb-1.eu-central-1.elb.amazonaws.com"},
    "task_definition_families": {"value": FAMILIES},
    "service_names": {"value": SERVICES},
    "private_subnet_ids": {"value": ["subnet-a", "subnet-b"]},
    "task_security_group_ids": {"value": {"api": "sg-api", "worker": "sg-worker", "report": "sg-report"}},
}

# Answers like the AWS CLI would, keeps state in $FAKE_STATE and logs every call.
FAKE_AWS = textwrap.dedent(
    r'''
    #!/usr/bin/env python3
    import json, os, sys
    state_dir = os.environ["FAKE_STATE"]
    path = os.path.join(state_dir, "state.json")
    st = json.load(open(path)) if os.path.exists(path) else {"services": {}, "revisions": {}}
    args = sys.argv[1:]
    with open(os.path.join(state_dir, "calls.log"), "a") as log:
        log.write(json.dumps(args) + "\n")
    def opt(name):
        return args[args.index(name) + 1] if name in args else None
    def save():
        json.dump(st, open(path, "w"))
    cmd = args[1] if args[0] == "ecs" else args[0]
    if args[:2] == ["ecs", "describe-task-definition"]:
        fam = opt("--task-definition")
        role = fam.rsplit("-", 1)[1]
        print(json.dumps({"taskDefinition": {
            "family": fam, "taskDefinitionArn": f"arn:td/{fam}:1", "revision": 1, "status": "ACTIVE",
            "requiresAttributes": [], "compatibilities": ["FARGATE"], "registeredAt": "x", "registeredBy": "y",
            "readonlyRootFilesystem": True,
            "containerDefinitions": [{"name": role, "image": "old@sha256:00"}, {"name": "sidecar", "image": "other:1"}]},
            "tags": [{"key": "Environment", "value": "prod"}]}))
    elif args[:2] == ["ecs", "register-task-definition"]:
        body = json.load(open(opt("--cli-input-json")[len("file://"):]))
        st["revisions"][body["family"]] = {"body": body, "tags": opt("--tags")}
        save()
        print(f"arn:td/{body['family']}:2")
    elif args[:2] == ["ecs", "run-task"]:
        st["migrate"] = {"td": opt("--task-definition"), "overrides": json.loads(opt("--overrides")),
                         "network": opt("--network-configuration")}
        save()
        print("arn:task/migrate")
    elif args[:2] == ["ecs", "describe-tasks"]:
        print(os.environ.get("FAKE_MIGRATE_EXIT", "0"))
    elif args[:2] == ["ecs", "describe-services"]:
        svc = opt("--services")
        current = st["services"].get(svc, f"arn:td/geoflow-prod-{svc}:1")
        if opt("--query"):
            print(current)
        else:
            rollout = "COMPLETED"
            if os.environ.get("FAKE_BREAKER") and current.endswith(":2"):
                current, rollout = current[:-1] + "1", "FAILED"  # ECS rolled it back
            print(json.dumps({"services": [{"deployments": [
                {"status": "PRIMARY", "taskDefinition": current, "rolloutState": rollout}]}]}))
    elif args[:2] == ["ecs", "update-service"]:
        st["services"][opt("--service")] = opt("--task-definition")
        save()
        print(opt("--service"))
    elif args[:2] == ["ecs", "wait"]:
        pass
    else:
        sys.exit(f"unexpected aws call: {args}")
    '''
).lstrip()

FAKE_CURL = '#!/bin/sh\necho "curl $*" >>"$FAKE_STATE/calls.log"\n[ "${FAKE_READY:-1}" = 1 ]\n'


@pytest.fixture
def fake(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("aws", FAKE_AWS), ("curl", FAKE_CURL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)

    def run(**env):
        full = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_STATE": str(tmp_path),
            "TF_OUTPUTS": json.dumps(TF_OUTPUTS),
            "IMAGE": f"{REPO}@{DIGEST}",
            "SMOKE_ATTEMPTS": "2",
            "SMOKE_INTERVAL": "0",
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            **env,
        }
        proc = subprocess.run([ROOT / "deploy/ecs-deploy"], env=full, capture_output=True, text=True)
        state_path = tmp_path / "state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        calls_path = tmp_path / "calls.log"
        calls = calls_path.read_text().splitlines() if calls_path.exists() else []
        return proc, state, calls

    return run


def new(role):
    return f"arn:td/{FAMILIES[role]}:2"


def old(role):
    return f"arn:td/{FAMILIES[role]}:1"


def test_rollout_registers_migrates_updates_and_probes(fake):
    proc, state, calls = fake(API_HOST="api.example.org")
    assert proc.returncode == 0, proc.stderr
    for role, family in FAMILIES.items():
        body = state["revisions"][family]["body"]
        images = {c["name"]: c["image"] for c in body["containerDefinitions"]}
        assert images == {role: f"{REPO}@{DIGEST}", "sidecar": "other:1"}
        assert body["readonlyRootFilesystem"] is True  # everything else is kept
        for gone in ("taskDefinitionArn", "revision", "status", "registeredAt", "compatibilities"):
            assert gone not in body
        assert json.loads(state["revisions"][family]["tags"]) == [{"key": "Environment", "value": "prod"}]
    assert state["migrate"]["td"] == new("report")
    assert state["migrate"]["overrides"] == {"containerOverrides": [{"name": "report", "command": ["migrate"]}]}
    assert "subnet-a,subnet-b" in state["migrate"]["network"] and "sg-report" in state["migrate"]["network"]
    assert state["services"] == {"api": new("api"), "worker": new("worker")}
    # Migration before any service moves; the smoke test verifies the certificate's host name.
    first_update = next(i for i, c in enumerate(calls) if "update-service" in c)
    assert any("run-task" in c for c in calls[:first_update])
    probe = [c for c in calls if c.startswith("curl")][-1]
    assert "--insecure" not in probe and "https://api.example.org/readyz" in probe


def test_failed_smoke_test_rolls_back(fake):
    proc, state, _ = fake(FAKE_READY="0")
    assert proc.returncode == 1
    assert state["services"] == {"api": old("api"), "worker": old("worker")}
    assert "rolling back" in proc.stderr


def test_circuit_breaker_rollback_fails_the_deploy(fake):
    proc, state, _ = fake(FAKE_BREAKER="1")
    assert proc.returncode == 1
    assert state["services"] == {"api": old("api"), "worker": old("worker")}


def test_failed_migration_leaves_services_alone(fake):
    proc, state, calls = fake(FAKE_MIGRATE_EXIT="1")
    assert proc.returncode == 1
    assert state.get("services") == {}
    assert not any("update-service" in c for c in calls)


def test_image_must_be_a_digest(fake):
    proc, _, calls = fake(IMAGE=f"{REPO}:latest")
    assert proc.returncode == 2
    assert calls == []


def test_services_have_the_circuit_breaker_the_script_relies_on():
    service_tf = (ROOT / "infra/terraform/modules/service/main.tf").read_text()
    blocks = service_tf.split("deployment_circuit_breaker {")[1:]
    assert len(blocks) == 2, "api and worker services"
    for block in blocks:
        body = block.split("}", 1)[0]
        assert "enable   = true" in body and "rollback = true" in body
