//! The configuration reference, `docs/configuration.md`, against the code.
//!
//! The reference's settings tables (those whose header starts with `| Environment variable |`)
//! have one row per setting and group of commands (a nested command named as it is typed:
//! `datasets drop`). This test walks the clap command tree and fails when
//! - an environment variable or flag of a command is not documented for that command,
//! - a row names an environment variable, flag or command that does not exist,
//! - a documented default differs from clap's,
//! - a setting read outside clap (`std::env::var("…")` in `crates/*/src` or a build script) is
//!   missing from [`OUTSIDE_CLAP`], or a variable listed there is not documented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use geoflow::cli::Cli;

/// Settings read outside clap, each documented with `—` as its flag.
const OUTSIDE_CLAP: &[&str] = &[
    // crates/geoflow/src/config.rs: credentials put into a postgres:// URL that has none.
    "GEOFLOW_DATABASE_USER",
    "GEOFLOW_DATABASE_PASSWORD",
    // crates/geoflow/src/telemetry.rs
    "GEOFLOW_LOG",
    "RUST_LOG",
    "GEOFLOW_LOG_FORMAT",
    // crates/geoflow/build.rs: the revision in `geoflow --version`, at build time.
    "GEOFLOW_REVISION",
    // std::env::temp_dir(): the default spool folder.
    "TMPDIR",
    // The AWS SDK (SQS) and object_store (S3) read these; storage.rs reads AWS_ENDPOINT_URL too.
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
];

/// Read in the code but not settings of geoflow.
const NOT_SETTINGS: &[&str] = &["CARGO_MANIFEST_DIR"];

const HEADER: &str = "| Environment variable |";
const NONE: &str = "—";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One row of a settings table.
#[derive(Debug, Clone)]
struct Row {
    line: usize,
    env: Option<String>,
    /// `--long`, or `<VALUE>` for a positional argument.
    flag: Option<String>,
    /// The first code span of the default cell; `None` for `—`.
    default: Option<String>,
    commands: Vec<String>,
}

/// One argument of one command, as clap has it.
#[derive(Debug, Clone)]
struct Arg {
    command: String,
    env: Option<String>,
    flag: Option<String>,
    default: Option<String>,
}

fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn optional(cell: &str) -> Option<String> {
    let cell = cell.trim();
    if cell == NONE {
        None
    } else {
        Some(code_spans(cell).into_iter().next().unwrap_or_else(|| panic!("expected `code` or {NONE}, found {cell:?}")))
    }
}

fn doc_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with(HEADER) {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("| ---") || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert!(cells.len() >= 5, "docs/configuration.md:{}: expected 5 cells, found {}: {line}", n + 1, cells.len());
        let commands =
            cells[3].split(',').map(|c| c.trim().trim_matches('`').to_string()).filter(|c| !c.is_empty()).collect();
        rows.push(Row {
            line: n + 1,
            env: optional(cells[0]),
            flag: optional(cells[1]),
            default: optional(cells[2]),
            commands,
        });
    }
    rows
}

fn clap_args() -> (Vec<Arg>, BTreeSet<String>) {
    let mut root = Cli::command();
    // Building fills in what clap derives, such as the `false` default of flags.
    root.build();
    let mut args = Vec::new();
    let mut commands = BTreeSet::new();
    for sub in root.get_subcommands() {
        walk_command(sub, sub.get_name().to_string(), &mut args, &mut commands);
    }
    (args, commands)
}

/// The arguments of `command` (named `name`, such as `datasets drop` for a nested one) and of
/// its subcommands.
fn walk_command(command: &clap::Command, name: String, args: &mut Vec<Arg>, commands: &mut BTreeSet<String>) {
    commands.insert(name.clone());
    for a in command.get_arguments() {
        let id = a.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let flag = match a.get_long() {
            Some(long) => Some(format!("--{long}")),
            None if a.is_positional() => {
                let value = a.get_value_names().and_then(|v| v.first().map(|n| n.to_string()));
                Some(format!("<{}>", value.unwrap_or_else(|| id.to_uppercase())))
            }
            None => None,
        };
        let defaults: Vec<String> = a.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
        args.push(Arg {
            command: name.clone(),
            env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
            flag,
            default: (!defaults.is_empty()).then(|| defaults.join(",")),
        });
    }
    // clap's own `help` subcommand of a command with subcommands is not a setting.
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        walk_command(sub, format!("{name} {}", sub.get_name()), args, commands);
    }
}

fn env_reads_in_code() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for krate in std::fs::read_dir(repo().join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        if krate.file_name().is_some_and(|n| n == "geoflow-testkit") {
            continue;
        }
        if krate.join("src").is_dir() {
            walk(&krate.join("src"), &mut files);
        }
        if krate.join("build.rs").is_file() {
            files.push(krate.join("build.rs"));
        }
    }
    let mut found = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for pattern in ["env::var(\"", "env::var_os(\""] {
            for (at, _) in text.match_indices(pattern) {
                let rest = &text[at + pattern.len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let shown = file.strip_prefix(repo()).unwrap_or(&file).display().to_string();
                found.entry(name).or_insert(shown);
            }
        }
    }
    found
}

#[test]
fn configuration_reference_matches_the_code() {
    let path = repo().join("docs/configuration.md");
    let text = std::fs::read_to_string(&path).expect("docs/configuration.md exists");
    let rows = doc_rows(&text);
    assert!(rows.len() > 20, "no settings tables found in docs/configuration.md (header {HEADER:?})");
    let (args, commands) = clap_args();
    let clap_envs: BTreeSet<String> = args.iter().filter_map(|a| a.env.clone()).collect();
    let mut problems = Vec::new();

    // Every argument of every command is documented for that command, with clap's default.
    for arg in &args {
        let matching: Vec<&Row> = rows
            .iter()
            .filter(|r| r.commands.contains(&arg.command))
            .filter(|r| (arg.env.is_some() && r.env == arg.env) || (arg.flag.is_some() && r.flag == arg.flag))
            .collect();
        let what = format!(
            "`geoflow {}` {} {}",
            arg.command,
            arg.flag.as_deref().unwrap_or(NONE),
            arg.env.as_deref().map(|e| format!("({e})")).unwrap_or_default()
        );
        match matching.as_slice() {
            [] => problems.push(format!("{what} is not documented for `{}`", arg.command)),
            [row] => {
                if row.env != arg.env || row.flag != arg.flag {
                    problems.push(format!(
                        "docs/configuration.md:{}: {what}: documented as {:?} {:?}",
                        row.line, row.flag, row.env
                    ));
                }
                if row.default != arg.default {
                    problems.push(format!(
                        "docs/configuration.md:{}: {what}: documented default {:?}, clap's is {:?}",
                        row.line, row.default, arg.default
                    ));
                }
            }
            many => problems.push(format!(
                "{what} is documented more than once, on lines {:?}",
                many.iter().map(|r| r.line).collect::<Vec<_>>()
            )),
        }
    }

    // Every row names things that exist.
    for row in &rows {
        let at = format!("docs/configuration.md:{}", row.line);
        let outside = row.flag.is_none() && row.env.as_ref().is_some_and(|e| !clap_envs.contains(e));
        if outside {
            let env = row.env.as_deref().unwrap();
            if !OUTSIDE_CLAP.contains(&env) {
                problems.push(format!("{at}: {env} is neither a clap setting nor read elsewhere in the code"));
            }
            continue;
        }
        if row.env.is_none() && row.flag.is_none() {
            problems.push(format!("{at}: a row with neither a variable nor a flag"));
            continue;
        }
        for command in &row.commands {
            if !commands.contains(command) {
                problems.push(format!("{at}: there is no command `geoflow {command}`"));
                continue;
            }
            let exists = args.iter().any(|a| &a.command == command && a.env == row.env && a.flag == row.flag);
            if !exists {
                problems.push(format!(
                    "{at}: `geoflow {command}` has no setting {} {}",
                    row.flag.as_deref().unwrap_or(NONE),
                    row.env.as_deref().unwrap_or(NONE)
                ));
            }
        }
    }

    // Settings read outside clap are listed above and documented.
    let documented: BTreeSet<&str> = rows.iter().filter_map(|r| r.env.as_deref()).collect();
    for env in OUTSIDE_CLAP {
        if !documented.contains(env) {
            problems.push(format!("{env} (read outside clap) is not documented"));
        }
    }
    for (env, file) in env_reads_in_code() {
        if !OUTSIDE_CLAP.contains(&env.as_str()) && !clap_envs.contains(&env) && !NOT_SETTINGS.contains(&env.as_str()) {
            problems.push(format!(
                "{file} reads {env}: document it in docs/configuration.md and list it in OUTSIDE_CLAP (tests/docs.rs)"
            ));
        }
    }

    assert!(problems.is_empty(), "docs/configuration.md is out of date:\n  {}", problems.join("\n  "));
}

#[test]
fn the_table_parser_reads_cells_and_defaults() {
    let rows = doc_rows(
        "| Environment variable | Flag | Default | Commands | Meaning |\n\
         | --- | --- | --- | --- | --- |\n\
         | `GEOFLOW_X` | `--x` | `5368709120` (5 GiB) | `api`, `serve` | a setting |\n\
         | — | `<PATH>` | — | `ingest` | the file |\n\
         \n\
         | not | a | settings | table | row |\n",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].env.as_deref(), Some("GEOFLOW_X"));
    assert_eq!(rows[0].default.as_deref(), Some("5368709120"));
    assert_eq!(rows[0].commands, ["api", "serve"]);
    assert_eq!(rows[1].flag.as_deref(), Some("<PATH>"));
    assert_eq!(rows[1].env, None);
}
