"""Static invariants of the geoflow Terraform, checked on parsed HCL (python-hcl2).

Every check is a function taking a directory (a module or an environment) and returning a
list of human-readable violations, so the tests can run it on the real tree and on mutated
copies of it.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[1]  # infra/terraform
sys.path.insert(0, str(ROOT / "policies"))
import geoflow_rules as rules  # noqa: E402

_OPTIONS = SerializationOptions(strip_string_quotes=True)


# --- Loading ----------------------------------------------------------------------------------


@dataclass
class Config:
    """All blocks of the .tf files in one directory."""

    path: Path
    resources: dict = field(default_factory=dict)  # type -> name -> body
    data: dict = field(default_factory=dict)  # type -> name -> body
    variables: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    locals: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)
    terraform: list = field(default_factory=list)
    text: dict = field(default_factory=dict)  # file name -> raw text

    def resources_of(self, rtype: str) -> dict:
        return self.resources.get(rtype, {})


def _blocks(value):
    """hcl2 returns repeated blocks as lists; single bodies as dicts."""
    if isinstance(value, list):
        for v in value:
            yield from _blocks(v)
    elif isinstance(value, dict):
        yield value


_CACHE: dict = {}


def load(path) -> Config:
    """Parse a directory once per content state (tests mutate copies, never the cache)."""
    path = Path(path).resolve()
    key = (path, tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(path.glob("*.tf"))))
    if key not in _CACHE:
        _CACHE[key] = _load(path)
    return _CACHE[key]


def _load(path: Path) -> Config:
    cfg = Config(path=path)
    files = sorted(path.glob("*.tf"))
    if not files:
        raise FileNotFoundError(f"no .tf files in {path}")
    for f in files:
        text = f.read_text()
        cfg.text[f.name] = text
        parsed = hcl2.loads(text, serialization_options=_OPTIONS)
        for item in parsed.get("resource", []):
            for rtype, named in item.items():
                for name, body in named.items():
                    cfg.resources.setdefault(rtype, {})[name] = body
        for item in parsed.get("data", []):
            for dtype, named in item.items():
                for name, body in named.items():
                    cfg.data.setdefault(dtype, {})[name] = body
        for item in parsed.get("variable", []):
            cfg.variables.update(item)
        for item in parsed.get("output", []):
            cfg.outputs.update(item)
        for item in parsed.get("locals", []):
            cfg.locals.update({k: v for k, v in item.items() if not k.startswith("__")})
        for item in parsed.get("module", []):
            cfg.modules.update(item)
        cfg.terraform.extend(parsed.get("terraform", []))
    return cfg


def modules_dir(root: Path = ROOT) -> Path:
    return Path(root) / "modules"


def module_dirs(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in modules_dir(root).iterdir() if p.is_dir())


def env_dirs(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (Path(root) / "envs").iterdir() if p.is_dir())


def all_config_dirs(root: Path = ROOT) -> list[Path]:
    return module_dirs(root) + env_dirs(root)


# --- Expression helpers -----------------------------------------------------------------------


def unwrap(expr) -> str:
    """"${aws_iam_role.api.arn}" -> "aws_iam_role.api.arn"."""
    if not isinstance(expr, str):
        return str(expr)
    m = re.fullmatch(r"\$\{(.*)\}", expr.strip(), flags=re.S)
    return m.group(1).strip() if m else expr


def as_list(value) -> list:
    return rules.flatten(value)


# --- Security groups --------------------------------------------------------------------------


@dataclass
class Ingress:
    where: str  # resource address
    group: str  # security group expression the rule belongs to
    protocol: object
    from_port: object
    to_port: object
    cidrs: list
    source_group: str | None


def ingress_rules(cfg: Config) -> list[Ingress]:
    out = []
    for name, body in cfg.resources_of("aws_security_group").items():
        for block in _blocks(body.get("ingress", [])):
            out.append(
                Ingress(
                    f"aws_security_group.{name}",
                    f"aws_security_group.{name}",
                    block.get("protocol"),
                    block.get("from_port"),
                    block.get("to_port"),
                    as_list(block.get("cidr_blocks")) + as_list(block.get("ipv6_cidr_blocks")),
                    " ".join(unwrap(s) for s in as_list(block.get("security_groups"))) or None,
                )
            )
    for name, body in cfg.resources_of("aws_security_group_rule").items():
        if body.get("type") != "ingress":
            continue
        out.append(
            Ingress(
                f"aws_security_group_rule.{name}",
                unwrap(body.get("security_group_id")),
                body.get("protocol"),
                body.get("from_port"),
                body.get("to_port"),
                as_list(body.get("cidr_blocks")) + as_list(body.get("ipv6_cidr_blocks")),
                unwrap(body["source_security_group_id"]) if body.get("source_security_group_id") else None,
            )
        )
    for name, body in cfg.resources_of("aws_vpc_security_group_ingress_rule").items():
        out.append(
            Ingress(
                f"aws_vpc_security_group_ingress_rule.{name}",
                unwrap(body.get("security_group_id")),
                body.get("ip_protocol"),
                body.get("from_port"),
                body.get("to_port"),
                as_list(body.get("cidr_ipv4")) + as_list(body.get("cidr_ipv6")),
                unwrap(body["referenced_security_group_id"]) if body.get("referenced_security_group_id") else None,
            )
        )
    return out


def world_ingress_violations(path) -> list[str]:
    """Ingress from 0.0.0.0/0 or ::/0 on anything but TCP 80/443."""
    cfg = load(path)
    out = []
    for r in ingress_rules(cfg):
        reason = rules.ingress_violation(r.protocol, r.from_port, r.to_port, r.cidrs)
        if reason:
            out.append(f"{cfg.path.name}: {r.where}: {reason}")
    return out


def world_ingress_everywhere(root: Path = ROOT) -> list[str]:
    return [v for d in all_config_dirs(root) for v in world_ingress_violations(d)]


def ingress_by_group(path) -> dict[str, list[Ingress]]:
    cfg = load(path)
    groups: dict[str, list[Ingress]] = {}
    for r in ingress_rules(cfg):
        groups.setdefault(r.group.removesuffix(".id"), []).append(r)
    return groups


def service_chain_violations(path) -> list[str]:
    """internet -> ALB (443/80) -> api (container port) ; worker and report take no ingress."""
    cfg = load(path)
    sgs = set(cfg.resources_of("aws_security_group"))
    out = []
    for needed in ("alb", "api", "worker", "report"):
        if needed not in sgs:
            out.append(f"security group {needed} missing")
    groups = ingress_by_group(path)
    alb = groups.get("aws_security_group.alb", [])
    ports = sorted(rules.to_port(r.from_port) or -1 for r in alb)
    if ports != [80, 443]:
        out.append(f"ALB ingress ports are {ports}, expected [80, 443]")
    for r in alb:
        if r.source_group or not all(rules.is_world(c) for c in r.cidrs):
            out.append(f"{r.where}: ALB ingress should come from the internet only")
    api = groups.get("aws_security_group.api", [])
    if not api:
        out.append("api security group has no ingress from the ALB")
    for r in api:
        if r.cidrs or r.source_group != "aws_security_group.alb.id":
            out.append(f"{r.where}: api ingress must come from the ALB security group only")
        if unwrap(r.from_port) != "var.container_port" or unwrap(r.to_port) != "var.container_port":
            out.append(f"{r.where}: api ingress must be the container port only")
    for name in ("worker", "report"):
        for r in groups.get(f"aws_security_group.{name}", []):
            out.append(f"{r.where}: {name} tasks must not accept ingress")
    extra = set(groups) - {"aws_security_group.alb", "aws_security_group.api"}
    for g in sorted(extra):
        out.append(f"unexpected ingress on {g}")
    # Egress of the ALB goes to the api tasks only.
    for name, body in cfg.resources_of("aws_vpc_security_group_egress_rule").items():
        if unwrap(body.get("security_group_id")) == "aws_security_group.alb.id":
            if unwrap(body.get("referenced_security_group_id")) != "aws_security_group.api.id":
                out.append(f"aws_vpc_security_group_egress_rule.{name}: ALB egress must target the api tasks")
    # Outputs the environments wire into the database module.
    sg_out = unwrap(cfg.outputs.get("security_group_ids", {}).get("value", ""))
    if sg_out != "local.task_security_groups":
        out.append("output security_group_ids must be local.task_security_groups")
    tsg = cfg.locals.get("task_security_groups", {})
    expected = {k: f"${{aws_security_group.{k}.id}}" for k in ("api", "worker", "report")}
    if tsg != expected:
        out.append(f"local.task_security_groups is {tsg}, expected {expected}")
    return out


def database_chain_violations(path) -> list[str]:
    """PostgreSQL ingress only from the task security groups handed in, on the DB port."""
    cfg = load(path)
    out = []
    rules_ = ingress_rules(cfg)
    if not rules_:
        out.append("database has no ingress rule at all")
    for r in rules_:
        if r.cidrs:
            out.append(f"{r.where}: database ingress by CIDR {r.cidrs}")
        if r.source_group != "each.value":
            out.append(f"{r.where}: database ingress must reference the allowed task security groups")
        if unwrap(r.from_port) != "var.port" or unwrap(r.to_port) != "var.port":
            out.append(f"{r.where}: database ingress must be the PostgreSQL port only")
    for name, body in cfg.resources_of("aws_vpc_security_group_ingress_rule").items():
        if unwrap(body.get("for_each")) != "var.allowed_security_group_ids":
            out.append(f"aws_vpc_security_group_ingress_rule.{name}: must iterate var.allowed_security_group_ids")
    if cfg.resources_of("aws_db_instance").get("this", {}).get("publicly_accessible") is not False:
        out.append("database must not be publicly accessible")
    return out


def env_chain_violations(path) -> list[str]:
    """The environment hands exactly the task security groups to the database."""
    cfg = load(path)
    db = cfg.modules.get("database", {})
    got = unwrap(db.get("allowed_security_group_ids", ""))
    if got != "module.service.security_group_ids":
        return [f"{cfg.path.name}: database allowed_security_group_ids is {got!r}"]
    return []


# --- IAM --------------------------------------------------------------------------------------


@dataclass
class Statement:
    where: str
    effect: str
    actions: list
    resources: list
    not_actions: list
    not_resources: list


def statements(cfg: Config, doc_name: str) -> list[Statement]:
    body = cfg.data.get("aws_iam_policy_document", {}).get(doc_name)
    if body is None:
        raise KeyError(f"no aws_iam_policy_document.{doc_name} in {cfg.path}")
    out = []
    for i, s in enumerate(_blocks(body.get("statement", []))):
        out.append(
            Statement(
                f"{cfg.path.name}: data.aws_iam_policy_document.{doc_name} statement {s.get('sid', i)}",
                s.get("effect", "Allow"),
                as_list(s.get("actions")),
                as_list(s.get("resources")),
                as_list(s.get("not_actions")),
                as_list(s.get("not_resources")),
            )
        )
    return out


def all_statements(cfg: Config) -> list[Statement]:
    return [s for name in cfg.data.get("aws_iam_policy_document", {}) for s in statements(cfg, name)]


def inline_policy_violations(cfg: Config) -> list[str]:
    """Identity policies must come from aws_iam_policy_document (so they are checkable)."""
    out = []
    for rtype in ("aws_iam_role_policy", "aws_iam_policy", "aws_iam_user_policy", "aws_iam_group_policy"):
        for name, body in cfg.resources_of(rtype).items():
            pol = unwrap(body.get("policy", ""))
            if not re.fullmatch(r"data\.aws_iam_policy_document\.[A-Za-z0-9_-]+\.json", pol):
                out.append(f"{cfg.path.name}: {rtype}.{name}: policy is not an aws_iam_policy_document")
    for name, body in cfg.resources_of("aws_iam_role").items():
        if body.get("inline_policy") or body.get("managed_policy_arns"):
            out.append(f"{cfg.path.name}: aws_iam_role.{name}: inline_policy/managed_policy_arns")
    return out


def iam_violations(path) -> list[str]:
    """No wildcard actions, no "*" resources where a narrower one exists, no inline JSON."""
    cfg = load(path)
    out = inline_policy_violations(cfg)
    for s in all_statements(cfg):
        for p in rules.statement_violations(s.effect, s.actions, s.not_actions, s.resources, s.not_resources):
            out.append(f"{s.where}: {p}")
    return out


def iam_everywhere(root: Path = ROOT) -> list[str]:
    return [v for d in all_config_dirs(root) for v in iam_violations(d)]


def role_documents(cfg: Config) -> dict[str, list[str]]:
    """aws_iam_role name -> names of the policy documents attached inline to it."""
    out: dict[str, list[str]] = {name: [] for name in cfg.resources_of("aws_iam_role")}
    for name, body in cfg.resources_of("aws_iam_role_policy").items():
        role = unwrap(body.get("role", ""))
        m = re.fullmatch(r"aws_iam_role\.([A-Za-z0-9_-]+)\.(id|name)", role)
        doc = re.fullmatch(r"data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)\.json", unwrap(body.get("policy", "")))
        if m and doc:
            out.setdefault(m.group(1), []).append(doc.group(1))
    return out


def permissions(cfg: Config, role: str) -> set[tuple[str, str]]:
    """(action, resource) pairs an Allow of the role's inline policies grants."""
    grants = set()
    for doc in role_documents(cfg).get(role, []):
        for s in statements(cfg, doc):
            if str(s.effect).lower() == "deny":
                continue
            for a in s.actions:
                for r in s.resources:
                    grants.add((a, unwrap(r) if r.startswith("${") and r.endswith("}") and r.count("${") == 1 else r))
    return grants


RAW = "${var.bucket_arn}/${var.raw_prefix}*"
REPORTS = "${var.bucket_arn}/${var.reports_prefix}*"
KEY = "var.kms_key_arn"
QUEUE = "var.queue_arn"
BUCKET = "var.bucket_arn"

EXPECTED_TASK_PERMISSIONS = {
    "api": {
        ("s3:PutObject", RAW),
        ("s3:AbortMultipartUpload", RAW),
        ("s3:GetObject", RAW),
        ("s3:DeleteObject", RAW),
        ("sqs:SendMessage", QUEUE),
        ("sqs:GetQueueAttributes", QUEUE),
        ("s3:GetObject", REPORTS),
        ("s3:ListBucket", BUCKET),
        ("kms:GenerateDataKey", KEY),
        ("kms:Decrypt", KEY),
    },
    "worker": {
        ("s3:GetObject", RAW),
        ("s3:GetObjectVersion", RAW),
        ("s3:ListBucket", BUCKET),
        ("sqs:ReceiveMessage", QUEUE),
        ("sqs:DeleteMessage", QUEUE),
        ("sqs:ChangeMessageVisibility", QUEUE),
        ("sqs:GetQueueAttributes", QUEUE),
        ("kms:Decrypt", KEY),
    },
    "report": {
        ("s3:PutObject", REPORTS),
        ("s3:AbortMultipartUpload", REPORTS),
        ("kms:GenerateDataKey", KEY),
        ("kms:Decrypt", KEY),
    },
}


def task_role_violations(path) -> list[str]:
    """One task role per service, each with exactly the listed permissions."""
    cfg = load(path)
    out = []
    trm = cfg.locals.get("task_role_arns", {})
    expected_map = {k: f"${{aws_iam_role.{k}.arn}}" for k in EXPECTED_TASK_PERMISSIONS}
    if trm != expected_map:
        out.append(f"local.task_role_arns is {trm}, expected one distinct role per service {expected_map}")
    tds = cfg.resources_of("aws_ecs_task_definition")
    for name, td in tds.items():
        if unwrap(td.get("task_role_arn", "")) != "local.task_role_arns[each.key]":
            out.append(f"aws_ecs_task_definition.{name}: task_role_arn must be the per-service role")
        if unwrap(td.get("execution_role_arn", "")) != "aws_iam_role.execution.arn":
            out.append(f"aws_ecs_task_definition.{name}: execution_role_arn must be the execution role")
    for role, expected in EXPECTED_TASK_PERMISSIONS.items():
        got = permissions(cfg, role)
        if got != expected:
            extra = sorted(got - expected)
            missing = sorted(expected - got)
            out.append(f"task role {role}: extra {extra}, missing {missing}")
    for rtype in ("aws_iam_role_policy_attachment", "aws_iam_policy_attachment"):
        for name, body in cfg.resources_of(rtype).items():
            out.append(f"{rtype}.{name}: task/execution roles get inline least-privilege policies only")
    # Listing is limited to the prefix the role works on.
    prefixes = {"api": ["${var.reports_prefix}*", "${var.raw_prefix}*"], "worker": ["${var.raw_prefix}*"]}
    for role, prefix in prefixes.items():
        for doc in role_documents(cfg).get(role, []):
            for s in _blocks(cfg.data["aws_iam_policy_document"][doc].get("statement", [])):
                if "s3:ListBucket" not in as_list(s.get("actions")):
                    continue
                conds = [(c.get("test"), c.get("variable"), as_list(c.get("values"))) for c in _blocks(s.get("condition", []))]
                if ("StringLike", "s3:prefix", prefix) not in conds:
                    out.append(f"task role {role}: s3:ListBucket must be limited to s3:prefix {prefix}")
    return out


SECRET_ACTION = re.compile(r"^(secretsmanager:|ssm:Get)", re.I)


def secret_reader_violations(path, allowed_roles=("execution",)) -> list[str]:
    """Only the execution role may read secrets."""
    cfg = load(path)
    docs_of_allowed = {d for r in allowed_roles for d in role_documents(cfg).get(r, [])}
    out = []
    for name in cfg.data.get("aws_iam_policy_document", {}):
        for s in statements(cfg, name):
            if str(s.effect).lower() == "deny":
                continue
            readers = [a for a in s.actions if SECRET_ACTION.match(a) or a == "*"]
            if readers and name not in docs_of_allowed:
                out.append(f"{s.where}: {readers} outside the execution role")
    return out


def secret_readers_everywhere(root: Path = ROOT) -> list[str]:
    out = []
    for d in all_config_dirs(root):
        allowed = ("execution",) if d.name == "service" else ()
        out.extend(secret_reader_violations(d, allowed))
    return out


# --- Containers -------------------------------------------------------------------------------


def container_violations(path) -> list[str]:
    cfg = load(path)
    out = []
    tds = cfg.resources_of("aws_ecs_task_definition")
    if not tds:
        return ["no task definitions"]
    for name, td in tds.items():
        cd = td.get("container_definitions", "")
        flat = re.sub(r"\s+", " ", cd)
        for needle in (
            "readonlyRootFilesystem = true",
            "privileged = false",
            "stopTimeout = var.stop_timeout",
            "user = var.container_user",
            'logDriver = "awslogs"',
            "secrets = local.role_secrets[each.key]",
        ):
            if needle not in flat:
                out.append(f"aws_ecs_task_definition.{name}: container definition lacks {needle}")
        if re.search(r"GEOFLOW_DATABASE_PASSWORD\s*\",?\s*value\s*=", flat) or "password=" in flat.lower():
            out.append(f"aws_ecs_task_definition.{name}: a password in plain environment")
    st = cfg.variables.get("stop_timeout", {})
    default = st.get("default")
    if not isinstance(default, (int, float)) or not (60 < default <= 120):
        out.append(f"stop_timeout default {default!r} must be above the worker's 60 s grace period and <= 120")
    conds = " ".join(str(v.get("condition", "")) for v in _blocks(st.get("validation", [])))
    if "var.stop_timeout > 60" not in conds:
        out.append("stop_timeout needs a validation rejecting values <= 60")
    user = cfg.variables.get("container_user", {}).get("default", "")
    if not re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", str(user)):
        out.append(f"container_user default {user!r} must be a non-root numeric uid")
    return out


def env_stop_timeout_violations(path) -> list[str]:
    cfg = load(path)
    v = cfg.modules.get("service", {}).get("stop_timeout")
    if v is not None and not (isinstance(v, (int, float)) and 60 < v <= 120):
        return [f"{cfg.path.name}: service stop_timeout {v!r} must be in (60, 120]"]
    return []


# --- Data services ----------------------------------------------------------------------------


def queue_violations(path) -> list[str]:
    cfg = load(path)
    out = []
    queues = cfg.resources_of("aws_sqs_queue")
    main, dlq = queues.get("this", {}), queues.get("dlq", {})
    rp = re.sub(r"\s+", " ", str(main.get("redrive_policy", "")))
    if "deadLetterTargetArn = aws_sqs_queue.dlq.arn" not in rp or "maxReceiveCount" not in rp:
        out.append("ingest queue lacks a redrive policy to the DLQ")
    for n, q in (("this", main), ("dlq", dlq)):
        if not q.get("kms_master_key_id"):
            out.append(f"aws_sqs_queue.{n} is not KMS-encrypted")
    stmts = [s for s in statements(cfg, "this") if str(s.effect).lower() != "deny"]
    body = cfg.data["aws_iam_policy_document"]["this"]
    for s in _blocks(body.get("statement", [])):
        if str(s.get("effect", "Allow")).lower() == "deny":
            continue
        principals = [i for p in _blocks(s.get("principals", [])) for i in as_list(p.get("identifiers"))]
        conds = {c.get("variable") for c in _blocks(s.get("condition", []))}
        if principals != ["s3.amazonaws.com"] or "aws:SourceArn" not in conds:
            out.append("queue policy may only admit the bucket (s3.amazonaws.com with aws:SourceArn)")
    if [a for s in stmts for a in s.actions] != ["sqs:SendMessage"]:
        out.append("queue policy may only allow sqs:SendMessage")
    return out


def bucket_violations(path) -> list[str]:
    cfg = load(path)
    out = []
    ver = cfg.resources_of("aws_s3_bucket_versioning").get("this", {})
    status = next(_blocks(ver.get("versioning_configuration", [])), {}).get("status")
    if status != "Enabled":
        out.append("data bucket versioning is not Enabled")
    sse = cfg.resources_of("aws_s3_bucket_server_side_encryption_configuration").get("this", {})
    algo = [
        d.get("sse_algorithm")
        for r in _blocks(sse.get("rule", []))
        for d in _blocks(r.get("apply_server_side_encryption_by_default", []))
    ]
    if algo != ["aws:kms"]:
        out.append(f"data bucket SSE is {algo}, expected aws:kms")
    for name in ("this", "logs"):
        pab = cfg.resources_of("aws_s3_bucket_public_access_block").get(name, {})
        for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            if pab.get(k) is not True:
                out.append(f"aws_s3_bucket_public_access_block.{name}.{k} is not true")
    tls = [
        s
        for s in _blocks(cfg.data["aws_iam_policy_document"]["bucket"].get("statement", []))
        if s.get("effect") == "Deny"
        and any(c.get("variable") == "aws:SecureTransport" for c in _blocks(s.get("condition", [])))
    ]
    if not tls:
        out.append("data bucket policy does not deny plain HTTP")
    lc = cfg.resources_of("aws_s3_bucket_lifecycle_configuration").get("this", {})
    lc_rules = list(_blocks(lc.get("rule", [])))
    if not any(next(_blocks(r.get("filter", [])), {}).get("prefix") == "${var.raw_prefix}" for r in lc_rules):
        out.append("no lifecycle rule for raw/")
    if not all(r.get("noncurrent_version_expiration") for r in lc_rules):
        out.append("a lifecycle rule keeps noncurrent versions forever")
    if not cfg.resources_of("aws_s3_bucket_logging").get("this"):
        out.append("data bucket has no access logging")
    notif = cfg.resources_of("aws_s3_bucket_notification").get("this", {})
    q = next(_blocks(notif.get("queue", [])), {})
    if sorted(as_list(q.get("events"))) != ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"] or q.get("filter_prefix") != "${var.raw_prefix}":
        out.append("raw/ ObjectCreated/ObjectRemoved notifications to the queue are missing")
    return out


def database_violations(path) -> list[str]:
    cfg = load(path)
    out = []
    db = cfg.resources_of("aws_db_instance").get("this", {})
    expect = {
        "storage_encrypted": True,
        "publicly_accessible": False,
        "manage_master_user_password": True,
        "performance_insights_enabled": True,
        "copy_tags_to_snapshot": True,
        "engine": "postgres",
    }
    for k, v in expect.items():
        if db.get(k) != v:
            out.append(f"aws_db_instance.this.{k} is {db.get(k)!r}, expected {v!r}")
    for k in ("password", "password_wo"):
        if k in db:
            out.append(f"aws_db_instance.this sets {k}: credentials must be managed by RDS")
    for k in ("kms_key_id", "performance_insights_kms_key_id", "master_user_secret_kms_key_id"):
        if unwrap(db.get(k, "")) != "var.kms_key_arn":
            out.append(f"aws_db_instance.this.{k} must be the customer key")
    for k in ("multi_az", "deletion_protection", "backup_retention_period"):
        if unwrap(db.get(k, "")) != f"var.{k}":
            out.append(f"aws_db_instance.this.{k} must be the {k} switch")
    params = {
        p.get("name"): str(p.get("value"))
        for pg in cfg.resources_of("aws_db_parameter_group").values()
        for p in _blocks(pg.get("parameter", []))
    }
    if params.get("rds.force_ssl") != "1":
        out.append("rds.force_ssl is not 1")
    conds = " ".join(str(v.get("condition", "")) for v in _blocks(cfg.variables.get("backup_retention_period", {}).get("validation", [])))
    if "var.backup_retention_period >= 1" not in conds:
        out.append("backup_retention_period must be validated >= 1 (point-in-time recovery)")
    conds = " ".join(str(v.get("condition", "")) for v in _blocks(cfg.variables.get("engine_version", {}).get("validation", [])))
    if ">= 15" not in conds:
        out.append("engine_version must be validated >= 15")
    for name in cfg.variables:
        if re.search(r"pass(word)?|secret", name, re.I):
            out.append(f"variable {name}: credentials must not be Terraform inputs")
    return out


# --- Module and environment shape -------------------------------------------------------------

REQUIRED_MODULES = {
    "network", "storage", "queue", "database", "registry", "service", "schedule", "observability", "ci-access",
}
MODULE_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
PIPELINE_OUTPUTS = {
    "ecr_repository_url", "cluster_name", "service_names", "task_definition_families", "alb_dns_name",
    "deploy_role_arn", "bucket_name", "queue_url",
}


def module_shape_violations(path) -> list[str]:
    path = Path(path)
    out = [f"{path.name}: {f} missing" for f in MODULE_FILES if not (path / f).is_file()]
    if out:
        return out
    cfg = load(path)
    validations = 0
    for name, v in cfg.variables.items():
        if not v.get("description"):
            out.append(f"{path.name}: variable {name} has no description")
        if not v.get("type"):
            out.append(f"{path.name}: variable {name} has no type")
        validations += len(list(_blocks(v.get("validation", []))))
    if validations == 0:
        out.append(f"{path.name}: no validation blocks")
    for name, o in cfg.outputs.items():
        if not o.get("description"):
            out.append(f"{path.name}: output {name} has no description")
    if "tags" not in cfg.variables:
        out.append(f"{path.name}: no tags variable")
    return out


def env_violations(root: Path = ROOT) -> list[str]:
    envs = {p.name: p for p in env_dirs(root)}
    out = []
    if set(envs) != {"staging", "prod"}:
        out.append(f"environments are {sorted(envs)}, expected prod and staging")
        return out
    for f in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        a, b = (envs["staging"] / f).read_text(), (envs["prod"] / f).read_text()
        if a != b:
            out.append(f"envs differ in {f}: only settings.tf (sizes, protection) and the state key may differ")
    settings = {n: load(p).locals.get("settings", {}) for n, p in envs.items()}
    if set(settings["staging"]) != set(settings["prod"]):
        out.append("settings.tf keys differ between environments")
    for n, p in envs.items():
        cfg = load(p)
        for f in ("terraform.tfvars.example", "backend.hcl.example"):
            if not (p / f).is_file():
                out.append(f"{n}: {f} missing")
        backends = [b for t in cfg.terraform for b in _blocks(t.get("backend", []))]
        s3 = [s for b in backends for s in _blocks(b.get("s3", {}))]
        if not s3:
            out.append(f"{n}: no S3 backend")
        for s in s3:
            if s.get("use_lockfile") is not True and not s.get("dynamodb_table"):
                out.append(f"{n}: S3 backend without locking")
            if s.get("encrypt") is not True:
                out.append(f"{n}: S3 backend without encryption")
            if n not in str(s.get("key", "")):
                out.append(f"{n}: state key {s.get('key')!r} does not name the environment")
        missing = PIPELINE_OUTPUTS - set(cfg.outputs)
        if missing:
            out.append(f"{n}: outputs missing {sorted(missing)}")
        used = {Path(unwrap(m.get("source", ""))).name for m in cfg.modules.values()}
        if not REQUIRED_MODULES <= used:
            out.append(f"{n}: modules not composed: {sorted(REQUIRED_MODULES - used)}")
    sp, st = settings["prod"], settings["staging"]
    if not (sp.get("deletion_protection") is True and sp.get("db_multi_az") is True and sp.get("force_destroy") is False):
        out.append("prod must have deletion protection, Multi-AZ and no force_destroy")
    if not (sp.get("log_retention_days", 0) >= 365):
        out.append("prod must keep logs for at least a year")
    if st.get("worker_use_fargate_spot") is not True:
        out.append("staging workers run on Fargate Spot")
    return out


def network_violations(path) -> list[str]:
    cfg = load(path)
    out = []
    if cfg.variables.get("enable_nat_gateway", {}).get("default") is not False:
        out.append("NAT gateway must be off by default")
    eps = set(as_list(cfg.variables.get("interface_endpoints", {}).get("default")))
    need = {"sqs", "ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts"}
    if not need <= eps:
        out.append(f"interface endpoints missing {sorted(need - eps)}")
    s3 = cfg.resources_of("aws_vpc_endpoint").get("s3", {})
    if s3.get("vpc_endpoint_type") != "Gateway":
        out.append("S3 must use a gateway endpoint")
    for name, sn in cfg.resources_of("aws_subnet").items():
        if sn.get("map_public_ip_on_launch") not in (None, False):
            out.append(f"aws_subnet.{name} maps public IPs")
    return out


def alb_violations(path) -> list[str]:
    cfg = load(path)
    out = []
    listeners = cfg.resources_of("aws_lb_listener")
    https = listeners.get("https", {})
    if https.get("protocol") != "HTTPS" or not https.get("certificate_arn"):
        out.append("HTTPS listener with an ACM certificate is missing")
    http = listeners.get("http", {})
    act = next(_blocks(http.get("default_action", [])), {})
    red = next(_blocks(act.get("redirect", [])), {})
    if act.get("type") != "redirect" or red.get("protocol") != "HTTPS":
        out.append("HTTP listener must redirect to HTTPS")
    tg = cfg.resources_of("aws_lb_target_group").get("api", {})
    hc = next(_blocks(tg.get("health_check", [])), {})
    if hc.get("path") != "/readyz":
        out.append("target group health check must be /readyz")
    for name in ("api", "worker"):
        svc = cfg.resources_of("aws_ecs_service").get(name, {})
        cb = next(_blocks(svc.get("deployment_circuit_breaker", [])), {})
        if cb.get("enable") is not True or cb.get("rollback") is not True:
            out.append(f"aws_ecs_service.{name}: circuit breaker with rollback is off")
        net = next(_blocks(svc.get("network_configuration", [])), {})
        if net.get("assign_public_ip") is not False:
            out.append(f"aws_ecs_service.{name}: tasks must not get public IPs")
    cluster = cfg.resources_of("aws_ecs_cluster").get("this", {})
    ci = [s for s in _blocks(cluster.get("setting", [])) if s.get("name") == "containerInsights"]
    if not ci or ci[0].get("value") not in ("enabled", "enhanced"):
        out.append("Container Insights is off")
    if not cfg.resources_of("aws_appautoscaling_policy"):
        out.append("worker autoscaling is missing")
    return out


# --- References (what `terraform validate` would catch, without the provider) -------------------

_COMMENT = re.compile(r'^\s*#.*$|\s#[^"\n]*$', re.M)


def _code(cfg: Config) -> str:
    return "\n".join(_COMMENT.sub("", t) for t in cfg.text.values())


def reference_violations(path) -> list[str]:
    """var./local./resource/data/module references resolve; module calls match the modules."""
    cfg = load(path)
    code = _code(cfg)
    out = []
    for name in sorted(set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", code)) - set(cfg.variables)):
        out.append(f"{cfg.path.name}: var.{name} is not declared")
    for name in sorted(set(re.findall(r"\blocal\.([A-Za-z_][A-Za-z0-9_]*)", code)) - set(cfg.locals)):
        out.append(f"{cfg.path.name}: local.{name} is not defined")
    for rtype, name in sorted(set(re.findall(r"\bdata\.(aws_[a-z0-9_]+)\.([A-Za-z_][A-Za-z0-9_-]*)", code))):
        if name not in cfg.data.get(rtype, {}):
            out.append(f"{cfg.path.name}: data.{rtype}.{name} is not declared")
    for rtype, name in sorted(set(re.findall(r"(?<![\w.:/-])(aws_[a-z0-9_]+)\.([A-Za-z_][A-Za-z0-9_-]*)", code))):
        if name not in cfg.resources.get(rtype, {}):
            out.append(f"{cfg.path.name}: {rtype}.{name} is not declared")
    for mod, attr in sorted(set(re.findall(r"\bmodule\.([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)", code))):
        call = cfg.modules.get(mod)
        if call is None:
            out.append(f"{cfg.path.name}: module.{mod} is not declared")
            continue
        target = load((cfg.path / call["source"]).resolve())
        if attr not in target.outputs:
            out.append(f"{cfg.path.name}: module.{mod}.{attr} is not an output of {call['source']}")
    for mod, call in cfg.modules.items():
        target = load((cfg.path / call["source"]).resolve())
        args = {k for k in call if not k.startswith("__")} - {"source", "version", "providers", "depends_on", "count", "for_each"}
        for a in sorted(args - set(target.variables)):
            out.append(f"{cfg.path.name}: module {mod} passes unknown input {a}")
        required = {n for n, v in target.variables.items() if "default" not in v}
        for a in sorted(required - args):
            out.append(f"{cfg.path.name}: module {mod} misses required input {a}")
    return out


# Resource types that cannot carry tags; every other resource must merge var.tags.
UNTAGGABLE = {
    "aws_route", "aws_route_table_association", "aws_s3_bucket_ownership_controls",
    "aws_s3_bucket_public_access_block", "aws_s3_bucket_versioning",
    "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_logging",
    "aws_s3_bucket_lifecycle_configuration", "aws_s3_bucket_policy", "aws_s3_bucket_notification",
    "aws_sqs_queue_redrive_allow_policy", "aws_sqs_queue_policy", "aws_iam_role_policy",
    "aws_iam_role_policy_attachment", "aws_kms_alias", "aws_ecr_lifecycle_policy",
    "aws_ecs_cluster_capacity_providers", "aws_appautoscaling_policy", "aws_sns_topic_policy",
    "aws_sns_topic_subscription", "aws_cloudwatch_event_target", "aws_cloudwatch_dashboard",
    "aws_scheduler_schedule",
}


def tag_violations(path) -> list[str]:
    cfg = load(path)
    out = []
    for rtype, named in cfg.resources.items():
        if rtype in UNTAGGABLE:
            continue
        for name, body in named.items():
            if "var.tags" not in str(body.get("tags", "")):
                out.append(f"{cfg.path.name}: {rtype}.{name} does not carry var.tags")
    return out
