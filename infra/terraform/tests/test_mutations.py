"""The checks catch what they exist for: each test breaks a copy of the tree and expects the
corresponding check (and, where it applies, the custom checkov policy) to flag it."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import tfinvariants as inv

CHECKOV = Path(os.environ.get("GEOFLOW_CHECKOV", "/var/tmp/geoflow-checkov/bin/checkov"))


@pytest.fixture
def tree(tmp_path):
    """A private copy of infra/terraform (modules, envs, policies)."""
    dst = tmp_path / "terraform"
    for part in ("modules", "envs", "policies"):
        shutil.copytree(inv.ROOT / part, dst / part, ignore=shutil.ignore_patterns("__pycache__", ".terraform*"))
    return dst


def mutate(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text, f"mutation anchor not found in {path}: {old!r}"
    path.write_text(text.replace(old, new, 1))


def append(path: Path, hcl: str):
    path.write_text(path.read_text() + "\n" + hcl)


WORLD_POSTGRES = '''
resource "aws_vpc_security_group_ingress_rule" "anyone" {
  security_group_id = aws_security_group.this.id
  description       = "PostgreSQL from anywhere"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  cidr_ipv4         = "0.0.0.0/0"
}
'''

WORLD_POSTGRES_LEGACY = '''
resource "aws_security_group_rule" "anyone_v6" {
  type              = "ingress"
  security_group_id = aws_security_group.this.id
  description       = "PostgreSQL from anywhere"
  protocol          = "tcp"
  from_port         = 5400
  to_port           = 5500
  ipv6_cidr_blocks  = ["::/0"]
}
'''

S3_STAR = ('actions   = ["s3:GetObject", "s3:GetObjectVersion"]', 'actions   = ["s3:*"]')


def checkov(tree: Path, check_ids: str) -> dict:
    if not CHECKOV.exists():
        pytest.skip(f"checkov not installed at {CHECKOV}")
    proc = subprocess.run(
        [
            str(CHECKOV), "-d", str(tree), "--framework", "terraform", "--skip-download", "--quiet",
            "--external-checks-dir", str(tree / "policies"), "--check", check_ids, "-o", "json",
        ],
        capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout.strip()
    reports = json.loads(out) if out.startswith(("[", "{")) else {}
    if isinstance(reports, dict):
        reports = [reports]
    failed = {}
    for r in reports:
        for f in r.get("results", {}).get("failed_checks", []):
            failed.setdefault(f["check_id"], set()).add(f["resource"])
    return failed


# --- Port 5432 open to the world ---------------------------------------------------------------


def test_world_open_postgres_is_flagged(tree):
    db = tree / "modules" / "database"
    assert inv.world_ingress_violations(db) == []
    append(db / "main.tf", WORLD_POSTGRES)
    found = inv.world_ingress_violations(db)
    assert any("5432" in v and "0.0.0.0/0" in v for v in found), found
    assert any("CIDR" in v for v in inv.database_chain_violations(db))


def test_world_open_postgres_range_over_ipv6_is_flagged(tree):
    db = tree / "modules" / "database"
    append(db / "main.tf", WORLD_POSTGRES_LEGACY)
    found = inv.world_ingress_violations(db)
    assert any("5432" in v and "::/0" in v for v in found), found


def test_world_open_postgres_inline_rule_is_flagged(tree):
    db = tree / "modules" / "database"
    mutate(
        db / "main.tf",
        '  vpc_id      = var.vpc_id\n',
        '  vpc_id      = var.vpc_id\n\n  ingress {\n    protocol    = "-1"\n    from_port   = 0\n'
        '    to_port     = 0\n    cidr_blocks = ["0.0.0.0/0"]\n  }\n',
    )
    found = inv.world_ingress_violations(db)
    assert any("all protocols" in v for v in found), found


def test_api_port_open_to_world_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(
        svc / "main.tf",
        "  referenced_security_group_id = aws_security_group.alb.id\n",
        '  cidr_ipv4                    = "0.0.0.0/0"\n',
    )
    assert any("8080" in v or "var.container_port" in v or "unresolvable" in v for v in inv.world_ingress_violations(svc))
    assert any("ALB security group only" in v for v in inv.service_chain_violations(svc))


def test_worker_ingress_breaks_chain(tree):
    svc = tree / "modules" / "service"
    append(
        svc / "main.tf",
        'resource "aws_vpc_security_group_ingress_rule" "worker_debug" {\n'
        "  security_group_id            = aws_security_group.worker.id\n"
        '  ip_protocol                  = "tcp"\n  from_port = 22\n  to_port = 22\n'
        "  referenced_security_group_id = aws_security_group.api.id\n}\n",
    )
    assert any("worker tasks must not accept ingress" in v for v in inv.service_chain_violations(svc))


def test_env_bypassing_task_groups_is_flagged(tree):
    env = tree / "envs" / "prod"
    mutate(
        env / "main.tf",
        "allowed_security_group_ids = module.service.security_group_ids",
        'allowed_security_group_ids = { any = "sg-0123456789abcdef0" }',
    )
    assert inv.env_chain_violations(env)
    assert any("envs differ in main.tf" in v for v in inv.env_violations(tree))


# --- IAM ---------------------------------------------------------------------------------------


def test_s3_star_grant_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "main.tf", *S3_STAR)
    assert any("'s3:*'" in v for v in inv.iam_violations(svc))
    assert any("task role worker" in v for v in inv.task_role_violations(svc))


def test_star_resource_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "main.tf", 'resources = ["${var.bucket_arn}/${var.reports_prefix}*"]\n  }\n\n  statement {\n    sid       = "BucketKey"',
           'resources = ["*"]\n  }\n\n  statement {\n    sid       = "BucketKey"')
    found = inv.iam_violations(svc)
    assert any("resource '*'" in v for v in found), found


def test_extra_task_permission_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "main.tf", '"s3:GetObject", "s3:DeleteObject"]',
           '"s3:GetObject", "s3:DeleteObject", "s3:PutObjectAcl"]')
    found = inv.task_role_violations(svc)
    assert any("task role api" in v and "s3:PutObjectAcl" in v for v in found), found


def test_shared_task_role_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "main.tf", "worker = aws_iam_role.worker.arn", "worker = aws_iam_role.api.arn")
    assert any("one distinct role per service" in v for v in inv.task_role_violations(svc))


def test_task_role_reading_secrets_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "main.tf", '"sqs:GetQueueAttributes",\n', '"sqs:GetQueueAttributes",\n      "secretsmanager:GetSecretValue",\n')
    found = inv.secret_reader_violations(svc)
    assert any("worker" in v and "secretsmanager:GetSecretValue" in v for v in found), found


def test_inline_json_policy_is_flagged(tree):
    svc = tree / "modules" / "service"
    append(
        svc / "main.tf",
        'resource "aws_iam_role_policy" "sneaky" {\n  role = aws_iam_role.api.id\n'
        '  policy = jsonencode({ Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "*", Resource = "*" }] })\n}\n',
    )
    assert any("sneaky" in v for v in inv.iam_violations(svc))


# --- Other invariants --------------------------------------------------------------------------


def test_short_stop_timeout_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "variables.tf", "  default     = 120\n\n  validation {\n    condition     = var.stop_timeout > 60",
           "  default     = 30\n\n  validation {\n    condition     = var.stop_timeout > 0")
    found = inv.container_violations(svc)
    assert any("stop_timeout default 30" in v for v in found), found
    assert any("validation" in v for v in found), found


def test_writable_root_filesystem_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "main.tf", "readonlyRootFilesystem = true", "readonlyRootFilesystem = false")
    assert any("readonlyRootFilesystem" in v for v in inv.container_violations(svc))


def test_queue_without_redrive_is_flagged(tree):
    q = tree / "modules" / "queue"
    mutate(q / "main.tf", "deadLetterTargetArn = aws_sqs_queue.dlq.arn", "deadLetterTargetArn = null")
    assert any("redrive" in v for v in inv.queue_violations(q))


def test_bucket_without_versioning_or_kms_is_flagged(tree):
    s = tree / "modules" / "storage"
    mutate(s / "main.tf", 'status = "Enabled"\n  }\n}\n\nresource "aws_s3_bucket_server_side_encryption_configuration" "this"',
           'status = "Suspended"\n  }\n}\n\nresource "aws_s3_bucket_server_side_encryption_configuration" "this"')
    mutate(s / "main.tf", 'sse_algorithm     = "aws:kms"', 'sse_algorithm     = "AES256"')
    found = inv.bucket_violations(s)
    assert any("versioning" in v for v in found) and any("SSE" in v for v in found), found


def test_public_or_plaintext_database_is_flagged(tree):
    d = tree / "modules" / "database"
    mutate(d / "main.tf", "publicly_accessible    = false", "publicly_accessible    = true")
    mutate(d / "main.tf", 'value = "1"', 'value = "0"')
    found = inv.database_violations(d)
    assert any("publicly_accessible" in v for v in found) and any("force_ssl" in v for v in found), found


def test_password_variable_is_flagged(tree):
    d = tree / "modules" / "database"
    append(d / "variables.tf", 'variable "master_password" {\n  description = "x"\n  type = string\n}\n')
    assert any("master_password" in v for v in inv.database_violations(d))


# --- The custom checkov policies catch the same mutations ---------------------------------------


def test_checkov_custom_policies_flag_world_postgres_and_s3_star(tree):
    append(tree / "modules" / "database" / "main.tf", WORLD_POSTGRES)
    mutate(tree / "modules" / "service" / "main.tf", *S3_STAR)
    append(
        tree / "modules" / "service" / "main.tf",
        'resource "aws_iam_role_policy" "sneaky" {\n  role = aws_iam_role.api.id\n'
        '  policy = jsonencode({ Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "s3:*", Resource = "*" }] })\n}\n',
    )
    failed = checkov(tree, "CKV_GFL_1,CKV_GFL_2,CKV_GFL_3,CKV_GFL_4")
    # Exactly the mutated resources fail (so the unmodified ones pass), each by the right policy.
    flagged = {(cid, r.split(".", 2)[-1] if r.startswith("module.") else r) for cid, rs in failed.items() for r in rs}
    assert flagged == {
        ("CKV_GFL_1", "aws_vpc_security_group_ingress_rule.anyone"),
        ("CKV_GFL_2", "aws_vpc_security_group_ingress_rule.anyone"),
        ("CKV_GFL_3", "aws_iam_policy_document.worker"),
        ("CKV_GFL_4", "aws_iam_role_policy.sneaky"),
    }, failed


# --- What `terraform validate` would catch ----------------------------------------------------


def test_typos_in_references_are_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "main.tf", "resources = [var.queue_arn]", "resources = [var.queue_arm]")
    mutate(svc / "main.tf", "aws_iam_role.execution.arn", "aws_iam_role.executon.arn")
    found = inv.reference_violations(svc)
    assert any("var.queue_arm" in v for v in found) and any("aws_iam_role.executon" in v for v in found), found
    env = tree / "envs" / "staging"
    mutate(env / "outputs.tf", "module.service.alb_dns_name", "module.service.alb_dns")
    mutate(env / "main.tf", "  image_tag      = var.image_tag\n", "")
    found = inv.reference_violations(env)
    assert any("alb_dns is not an output" in v for v in found), found
    assert any("misses required input image_tag" in v for v in found), found


def test_untagged_resource_is_flagged(tree):
    q = tree / "modules" / "queue"
    mutate(q / "main.tf", '  tags = merge(var.tags, { Name = "${var.name}-dlq" })\n', "")
    assert any("aws_sqs_queue.dlq" in v for v in inv.tag_violations(q))


def test_unrestricted_listing_is_flagged(tree):
    svc = tree / "modules" / "service"
    mutate(svc / "main.tf", 'values   = ["${var.raw_prefix}*"]', 'values   = ["*"]')
    assert any("worker" in v and "s3:prefix" in v for v in inv.task_role_violations(svc))
