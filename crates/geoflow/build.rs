//! Embeds the git revision in the binary for `geoflow --version`.
//!
//! `GEOFLOW_REVISION` in the build environment wins (container builds have no `.git`); otherwise
//! `git rev-parse` is asked, and outside a checkout the revision is `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=GEOFLOW_REVISION");
    let revision = std::env::var("GEOFLOW_REVISION")
        .ok()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=GEOFLOW_REVISION={revision}");
}

fn git_revision() -> Option<String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if let Some(git_dir) = git_dir(&manifest_dir) {
        // Rebuild when HEAD moves: a checkout changes HEAD, a commit changes the branch ref.
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", git_dir.join("refs").display());
        println!("cargo:rerun-if-changed={}", git_dir.join("packed-refs").display());
    }
    let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(&manifest_dir).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!rev.is_empty()).then_some(rev)
}

/// The `.git` directory of the checkout holding `dir`, if any.
fn git_dir(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().map(|d| d.join(".git")).find(|g| g.is_dir())
}
