"""Invariants of the GitHub Actions workflows, the image and the local stack.

Each rule is a function returning the list of problems it finds, so that the same rule runs on
the real files (no problems allowed) and on mutated copies (the mutation must be caught).
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
RELEASE = WORKFLOWS / "release.yml"
TERRAFORM = ROOT / "infra" / "terraform"

SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v?\d+(\.\d+)*\S*\s*$")
PUSH_COMMAND = re.compile(r"\b(docker push|skopeo copy [^\n]*docker://|deploy/push-image)")
DEPLOY_COMMAND = re.compile(r"\b(deploy/ecs-deploy|aws ecs (update-service|register-task-definition))")
BUILD_ACTION = "docker/build-push-action"


# --- loading -------------------------------------------------------------------------------


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the key `on` as the boolean True.
    return workflow.get("on", workflow.get(True)) or {}


def terraform_environment(env: str) -> str:
    """The environment name in envs/<env>/settings.tf (the deploy role trusts that name)."""
    text = (TERRAFORM / "envs" / env / "settings.tf").read_text()
    return re.search(r'environment\s*=\s*"([^"]+)"', text).group(1)


def environment_name(job: dict) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def step_text(step: dict) -> str:
    return yaml.safe_dump(step, sort_keys=True)


def job_text(job: dict) -> str:
    return yaml.safe_dump(job, sort_keys=True)


def uses(step: dict) -> str:
    return step.get("uses", "") or ""


def needs(job: dict) -> list[str]:
    n = job.get("needs", [])
    return [n] if isinstance(n, str) else list(n)


def ancestors(jobs: dict, name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(needs(jobs[name]))
    while todo:
        j = todo.pop()
        if j not in seen and j in jobs:
            seen.add(j)
            todo.extend(needs(jobs[j]))
    return seen


def scan_jobs(jobs: dict) -> list[str]:
    return [n for n, j in jobs.items() if any("aquasecurity/trivy-action" in uses(s) for s in j.get("steps", []))]


def production_job(jobs: dict) -> str | None:
    prod = terraform_environment("prod")
    found = [n for n, j in jobs.items() if environment_name(j) == prod]
    return found[0] if len(found) == 1 else None


# --- rules ---------------------------------------------------------------------------------


def check_production_environment(wf: dict) -> list[str]:
    jobs = wf["jobs"]
    prod, staging = terraform_environment("prod"), terraform_environment("staging")
    problems = []
    if "production" not in jobs:
        return ["release.yml has no production job"]
    if environment_name(jobs["production"]) != prod:
        problems.append(f"the production job must run in the protected environment {prod!r}")
    staging_jobs = [n for n, j in jobs.items() if environment_name(j) == staging]
    if not staging_jobs:
        problems.append(f"no job deploys to {staging!r}")
    elif not set(staging_jobs) & ancestors(jobs, "production"):
        problems.append("production does not wait for the staging deployment")
    # Anything that deploys or assumes the AWS role must sit in an environment.
    for name, job in jobs.items():
        text = job_text(job)
        if (DEPLOY_COMMAND.search(text) or "role-to-assume" in text) and not environment_name(job):
            problems.append(f"job {name} touches AWS outside a GitHub environment")
    return problems


def check_oidc_only(wf: dict, raw: str) -> list[str]:
    problems = []
    for pattern in ("aws-access-key-id", "aws-secret-access-key", "aws-session-token", "secrets.AWS_"):
        if pattern.lower() in raw.lower():
            problems.append(f"stored AWS credentials referenced ({pattern})")
    for name, job in wf.get("jobs", {}).items():
        for step in job.get("steps", []):
            if "aws-actions/configure-aws-credentials" in uses(step):
                if not (step.get("with") or {}).get("role-to-assume"):
                    problems.append(f"job {name}: configure-aws-credentials without role-to-assume")
                if (job.get("permissions") or {}).get("id-token") != "write":
                    problems.append(f"job {name}: OIDC needs permissions id-token: write")
    return problems


def check_pinned(raw: str) -> list[str]:
    problems = []
    for line in raw.splitlines():
        m = re.match(r"^\s*(?:-\s*)?uses:\s*([^\s#]+)(.*)$", line)
        if not m:
            continue
        ref, rest = m.group(1).strip("'\""), m.group(2)
        if ref.startswith("./"):
            continue  # actions in this repository
        if ref.startswith("docker://"):
            if not re.search(r"@sha256:[0-9a-f]{64}$", ref):
                problems.append(f"{ref}: container actions must be pinned by digest")
            continue
        if not SHA_PIN.match(ref):
            problems.append(f"{ref}: not pinned by a full commit SHA")
        elif not VERSION_COMMENT.search(rest):
            problems.append(f"{ref}: add the release it is, as a '# vX.Y.Z' comment")
    return problems


def check_same_digest(wf: dict) -> list[str]:
    jobs = wf["jobs"]
    problems = []
    scanners = scan_jobs(jobs)
    if len(scanners) != 1:
        return [f"expected one job that builds and scans the image, found {scanners}"]
    build = scanners[0]
    if "digest" not in (jobs[build].get("outputs") or {}):
        problems.append(f"job {build} must output the digest it scanned")
    ref = f"needs.{build}.outputs.digest"
    for name, job in jobs.items():
        text = job_text(job)
        if not DEPLOY_COMMAND.search(text) and not PUSH_COMMAND.search(text):
            continue
        if name == build:
            continue
        if build not in needs(job):
            problems.append(f"job {name} pushes or deploys without needing {build}")
        if ref not in text:
            problems.append(f"job {name} does not use the digest {build} scanned ({ref})")
        if BUILD_ACTION in text or "docker build" in text or "buildx build" in text:
            problems.append(f"job {name} builds its own image instead of using {build}'s")
        for step in job.get("steps", []):
            if DEPLOY_COMMAND.search(step_text(step)):
                image = (step.get("env") or {}).get("IMAGE", "")
                if not image.endswith("@${{ " + ref + " }}"):
                    problems.append(f"job {name}: the deployed IMAGE must be <repository>@${{{{ {ref} }}}}")
    prod = production_job(jobs)
    if prod is None:
        problems.append("no single production job")
    elif ref not in job_text(jobs[prod]):
        problems.append("the production job does not deploy the scanned digest")
    return problems


def check_scan_before_push(wf: dict) -> list[str]:
    jobs = wf["jobs"]
    scanners = scan_jobs(jobs)
    if not scanners:
        return ["no Trivy scan"]
    problems = []
    for name in scanners:
        steps = jobs[name]["steps"]
        idx = next(i for i, s in enumerate(steps) if "aquasecurity/trivy-action" in uses(s))
        opts = steps[idx].get("with") or {}
        if str(opts.get("exit-code")) != "1":
            problems.append("Trivy must fail the job (exit-code: 1)")
        if not {"HIGH", "CRITICAL"} <= set(str(opts.get("severity", "")).split(",")):
            problems.append("Trivy must fail on HIGH and CRITICAL findings")
        for i, step in enumerate(steps):
            t = step_text(step)
            pushes = PUSH_COMMAND.search(t) or (BUILD_ACTION in uses(step) and (step.get("with") or {}).get("push"))
            if pushes and i < idx or DEPLOY_COMMAND.search(t):
                problems.append(f"job {name}: step {i} pushes or deploys before/beside the scan")
    for name, job in jobs.items():
        if name in scanners:
            continue
        if PUSH_COMMAND.search(job_text(job)) or DEPLOY_COMMAND.search(job_text(job)):
            if not set(scanners) & ancestors(jobs, name):
                problems.append(f"job {name} pushes or deploys without waiting for the scan")
    return problems


def check_permissions(wf: dict) -> list[str]:
    problems = []
    # Jobs get what they need; the workflow level grants nothing they could inherit.
    if wf.get("permissions", "missing") != {}:
        problems.append("declare workflow-level `permissions: {}`")
    for name, job in wf.get("jobs", {}).items():
        if "permissions" not in job:
            problems.append(f"job {name} does not declare its permissions")
            continue
        perms = job["permissions"]
        if isinstance(perms, str):
            problems.append(f"job {name}: permissions {perms!r}; list them one by one")
            continue
        if perms.get("id-token") == "write" and not environment_name(job):
            problems.append(f"job {name}: id-token: write outside a GitHub environment")
        if "role-to-assume" not in job_text(job) and perms.get("id-token"):
            problems.append(f"job {name}: id-token without assuming a role")
        for scope, level in perms.items():
            if level == "write" and scope not in ("id-token", "packages"):
                problems.append(f"job {name}: {scope}: write is not needed")
    return problems


def check_concurrency(wf: dict) -> list[str]:
    problems = []
    for name, job in wf["jobs"].items():
        env = environment_name(job)
        if not env:
            continue
        group = str((job.get("concurrency") or {}).get("group", ""))
        if env not in group:
            problems.append(f"job {name}: concurrency group must be per environment ({env})")
        if (job.get("concurrency") or {}).get("cancel-in-progress") is not False:
            problems.append(f"job {name}: a rollout in progress must not be cancelled")
    return problems


def all_rules(wf: dict, raw: str) -> list[str]:
    return (
        check_production_environment(wf)
        + check_oidc_only(wf, raw)
        + check_pinned(raw)
        + check_same_digest(wf)
        + check_scan_before_push(wf)
        + check_permissions(wf)
        + check_concurrency(wf)
    )


# --- the real workflows --------------------------------------------------------------------


@pytest.fixture(scope="module")
def release() -> tuple[dict, str]:
    raw = RELEASE.read_text()
    return yaml.safe_load(raw), raw


def test_release_workflow_satisfies_every_rule(release):
    wf, raw = release
    assert all_rules(wf, raw) == []


def test_release_triggers(release):
    wf, _ = release
    on = triggers(wf)
    assert on["push"]["branches"] == ["main"]
    assert on["push"]["tags"] == ["v*"]
    assert "pull_request" not in on, "a pull request must never deploy"


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_every_workflow_pins_actions_and_declares_permissions(path):
    raw = path.read_text()
    wf = yaml.safe_load(raw)
    assert check_pinned(raw) == []
    assert check_oidc_only(wf, raw) == []
    assert check_permissions(wf) == []


def test_ci_runs_every_check():
    wf = load(WORKFLOWS / "ci.yml")
    on = triggers(wf)
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    text = yaml.safe_dump(wf)
    for needle in (
        "cargo fmt --all -- --check",
        "-D warnings",
        "cargo test --workspace --locked",
        "cargo audit",
        "scripts/check-infra",
        "scripts/check-deploy",
        "GEOFLOW_MOTO_SERVER",
        "GEOFLOW_REQUIRE_TOOLS",
        "GEOFLOW_TEST_DATABASE_URL",
    ):
        assert needle in text, needle
    services = wf["jobs"]["test"]["services"]
    assert services["postgis"]["image"].startswith("postgis/postgis:")


def test_deploy_reads_only_existing_terraform_outputs():
    outputs = set(re.findall(r'^output "([^"]+)"', (TERRAFORM / "envs/prod/outputs.tf").read_text(), re.M))
    assert outputs == set(re.findall(r'^output "([^"]+)"', (TERRAFORM / "envs/staging/outputs.tf").read_text(), re.M))
    used = set(re.findall(r"\$\(out (\w+)\)", (ROOT / "deploy/ecs-deploy").read_text()))
    used |= set(re.findall(r"for key in ([\w ]+);", RELEASE.read_text())[0].split())
    assert used, "no outputs found"
    assert used <= outputs, used - outputs
    # Container names in the task definitions are the roles (module service: each.key).
    service_tf = (TERRAFORM / "modules/service/main.tf").read_text()
    for role in ("api", "worker", "report"):
        assert re.search(rf"^\s*{role}\s*=\s*{{\s*command\s*=\s*\[\"{role}\"\]", service_tf, re.M), role


# --- mutations: each must be caught ---------------------------------------------------------


def mutate(release, fn):
    wf, raw = release
    wf = copy.deepcopy(wf)
    raw = fn(wf, raw) or raw
    if raw == release[1]:
        raw = yaml.safe_dump(wf)
    return wf, raw


def test_production_without_environment_is_caught(release):
    def fn(wf, raw):
        del wf["jobs"]["production"]["environment"]

    assert check_production_environment(*mutate(release, fn)[:1])


def test_production_in_unprotected_environment_is_caught(release):
    def fn(wf, raw):
        wf["jobs"]["production"]["environment"] = "production-unprotected"

    assert check_production_environment(mutate(release, fn)[0])


def test_production_skipping_staging_is_caught(release):
    def fn(wf, raw):
        wf["jobs"]["production"]["needs"] = ["build"]

    assert check_production_environment(mutate(release, fn)[0])


def test_stored_aws_keys_are_caught(release):
    def fn(wf, raw):
        for step in wf["jobs"]["staging"]["steps"]:
            if "configure-aws-credentials" in uses(step):
                step["with"]["aws-access-key-id"] = "${{ secrets.AWS_ACCESS_KEY_ID }}"

    wf, raw = mutate(release, fn)
    assert check_oidc_only(wf, raw)


def test_oidc_without_id_token_is_caught(release):
    def fn(wf, raw):
        del wf["jobs"]["production"]["permissions"]["id-token"]

    wf, raw = mutate(release, fn)
    assert check_oidc_only(wf, raw)


def test_unpinned_action_is_caught(release):
    wf, raw = release
    mutated = raw.replace(
        "aquasecurity/trivy-action@915b19bbe73b92a6cf82a1bc12b087c9a19a5fe2 # v0.28.0",
        "aquasecurity/trivy-action@0.28.0",
    )
    assert mutated != raw
    assert check_pinned(mutated)
    assert check_pinned(raw.replace("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", "actions/checkout@v4", 1))
    assert check_pinned(raw.replace("@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "@11bd71901bbe5b1630ceea73d27597364c9af683", 1))


def test_production_deploying_a_tag_is_caught(release):
    def fn(wf, raw):
        for step in wf["jobs"]["production"]["steps"]:
            if (step.get("env") or {}).get("IMAGE"):
                step["env"]["IMAGE"] = "${{ steps.tf.outputs.ecr_repository_url }}:${{ github.sha }}"
        wf["jobs"]["production"]["env"]["DIGEST"] = "${{ github.sha }}"

    assert check_same_digest(mutate(release, fn)[0])


def test_production_rebuilding_the_image_is_caught(release):
    def fn(wf, raw):
        steps = wf["jobs"]["production"]["steps"]
        steps.insert(1, {"uses": f"{BUILD_ACTION}@{'a' * 40}", "with": {"push": True}})

    assert check_same_digest(mutate(release, fn)[0])


def test_production_not_needing_the_build_is_caught(release):
    def fn(wf, raw):
        wf["jobs"]["production"]["needs"] = ["staging"]

    assert check_same_digest(mutate(release, fn)[0])


def test_missing_scan_is_caught(release):
    def fn(wf, raw):
        wf["jobs"]["build"]["steps"] = [s for s in wf["jobs"]["build"]["steps"] if "trivy" not in uses(s)]

    assert check_scan_before_push(mutate(release, fn)[0])


def test_push_before_scan_is_caught(release):
    def fn(wf, raw):
        steps = wf["jobs"]["build"]["steps"]
        steps.insert(1, {"run": 'deploy/push-image "$L" "$D" repo tag'})

    assert check_scan_before_push(mutate(release, fn)[0])


def test_scan_that_never_fails_is_caught(release):
    def fn(wf, raw):
        for step in wf["jobs"]["build"]["steps"]:
            if "trivy" in uses(step):
                step["with"]["exit-code"] = "0"

    assert check_scan_before_push(mutate(release, fn)[0])


def test_missing_job_permissions_are_caught(release):
    def fn(wf, raw):
        del wf["jobs"]["staging"]["permissions"]

    assert check_permissions(mutate(release, fn)[0])


def test_broad_permissions_are_caught(release):
    def fn(wf, raw):
        wf["permissions"] = "write-all"
        wf["jobs"]["build"]["permissions"]["contents"] = "write"

    assert len(check_permissions(mutate(release, fn)[0])) >= 2


def test_shared_concurrency_group_is_caught(release):
    def fn(wf, raw):
        wf["jobs"]["production"]["concurrency"] = {"group": "deploy", "cancel-in-progress": True}

    assert len(check_concurrency(mutate(release, fn)[0])) == 2


# --- image tags ----------------------------------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "ref,expected",
    [
        ("refs/heads/main", [SHA]),
        ("refs/tags/v1.2.3", ["1.2.3", "1.2 moving", "latest moving"]),
        ("refs/tags/v1.3.0-rc.1", ["1.3.0-rc.1"]),
        ("refs/tags/v2.0.0+build.5", ["2.0.0", "2.0 moving", "latest moving"]),
    ],
)
def test_image_tags(ref, expected):
    out = subprocess.run([ROOT / "deploy/image-tags", ref, SHA], check=True, capture_output=True, text=True)
    assert out.stdout.splitlines() == expected


@pytest.mark.parametrize("ref,sha", [("refs/tags/1.2.3", SHA), ("refs/tags/v1.2", SHA), ("refs/heads/main", "abc")])
def test_image_tags_rejects_bad_input(ref, sha):
    assert subprocess.run([ROOT / "deploy/image-tags", ref, sha], capture_output=True).returncode != 0


# --- container image and local stack -------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "deploy/Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def runtime_stage() -> list[tuple[str, str]]:
    ins = dockerfile_instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def test_dockerfile_contract():
    ins = dockerfile_instructions()
    runs = " ".join(r for w, r in ins if w == "RUN")
    assert "cargo chef cook --release --locked" in runs
    assert "cargo build --release --locked -p geoflow" in runs
    stage = dict((w, r) for w, r in runtime_stage())
    assert "distroless/cc-debian12" in stage["FROM"] or "debian:12-slim" in stage["FROM"]
    user = stage["USER"].split(":")[0]
    assert user not in ("0", "root") and user.isdigit(), "run as a numeric non-root user"
    assert stage["ENTRYPOINT"] == '["/usr/local/bin/geoflow"]'
    assert stage["CMD"] == '["worker"]'
    assert stage["STOPSIGNAL"] == "SIGTERM"
    assert '"/usr/local/bin/geoflow", "healthcheck"' in stage["HEALTHCHECK"]
    assert stage["WORKDIR"] == "/data" and "/data" in stage["VOLUME"]
    assert "TMPDIR=/tmp" in stage["ENV"]
    labels = stage["LABEL"]
    for key, arg in (("version", "VERSION"), ("revision", "REVISION"), ("source", "SOURCE")):
        assert f'org.opencontainers.image.{key}="${{{arg}}}"' in labels
    # The revision reaches build.rs, since .git is not in the build context.
    assert ("ENV", "GEOFLOW_REVISION=${REVISION}") in ins


def test_dockerignore_keeps_state_and_data_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for entry in (".git", "**/target", "geoflow-data", "bench-data", "**/*.tfstate", "**/.terraform"):
        assert entry in ignored, entry


def test_compose_stack():
    compose = load(ROOT / "deploy/compose.yaml")
    services = compose["services"]
    assert services["postgis"]["image"].startswith("postgis/postgis:15-3.4")
    assert services["moto"]["image"].startswith("motoserver/moto")
    assert services["init"]["image"].startswith("amazon/aws-cli")
    for name in ("postgis", "moto"):
        assert "healthcheck" in services[name], name
    script = "\n".join(services["init"]["command"])
    for needle in ("put-bucket-versioning", "RedrivePolicy", "put-bucket-notification-configuration",
                   "s3:ObjectCreated:*", "s3:ObjectRemoved:*", '\\"Value\\":\\"raw/\\"'):
        assert needle in script, needle
    for name, command in (("worker", ["worker"]), ("api", ["api"])):
        svc = services[name]
        assert svc["command"] == command
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert svc["read_only"] is True
        env = svc["environment"]
        assert env["GEOFLOW_STORAGE_URL"].startswith("s3://")
        for key in ("GEOFLOW_DATABASE_URL", "GEOFLOW_QUEUE_URL", "AWS_ENDPOINT_URL", "AWS_REGION"):
            assert env.get(key), f"{name}: {key}"
        assert svc["depends_on"] == {
            "postgis": {"condition": "service_healthy"},
            "moto": {"condition": "service_healthy"},
            "init": {"condition": "service_completed_successfully"},
        }
    assert "127.0.0.1:8080:8080" in services["api"]["ports"]


# --- the linters themselves catch what they should -------------------------------------------

TOOLS = Path(__import__("sys").executable).parent


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to this Python (scripts/check-deploy installs it)")
    return path


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    broken = RELEASE.read_text().replace("needs.build.outputs.digest }}@", "needs.biuld.outputs.digest }}@", 1)
    broken = broken.replace("${{ needs.build.outputs.digest }}", "${{ needs.biuld.outputs.digest }}", 1)
    (tmp_path / "release.yml").write_text(broken)
    run = subprocess.run([tool("actionlint"), str(tmp_path / "release.yml")], capture_output=True, text=True)
    assert run.returncode != 0 and "biuld" in run.stdout


def test_hadolint_rejects_a_broken_dockerfile(tmp_path):
    text = (ROOT / "deploy/Dockerfile").read_text()
    (tmp_path / "Dockerfile").write_text(text.replace("USER 10001:10001", "USER root\nRUN apt-get install -y curl"))
    run = subprocess.run([tool("hadolint"), str(tmp_path / "Dockerfile")], capture_output=True, text=True)
    assert run.returncode != 0 and "DL3002" in run.stdout  # last USER should not be root


def test_ci_and_image_use_the_same_rust():
    ci = load(WORKFLOWS / "ci.yml")["env"]["RUST_TOOLCHAIN"]
    image = re.search(r"^ARG RUST_VERSION=(\S+)", (ROOT / "deploy/Dockerfile").read_text(), re.M).group(1)
    assert ci == image or ci.startswith(image + "."), (ci, image)
