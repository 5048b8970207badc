//! The bytes of one source: a file read twice (schema pass, load pass), or stdin spooled to a
//! temporary file first. Both passes hash what they read, so a file that changes between them
//! is caught.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Where a source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    Stdin,
}

impl Input {
    /// `-` means stdin.
    pub fn from_arg(arg: &Path) -> Input {
        if arg == Path::new("-") {
            Input::Stdin
        } else {
            Input::Path(arg.to_path_buf())
        }
    }

    /// The default source key: the file name, or `stdin`.
    pub fn default_source(&self) -> String {
        match self {
            Input::Path(p) => {
                p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
            }
            Input::Stdin => "stdin".to_string(),
        }
    }
}

/// A source that can be read from the start as often as needed.
#[derive(Debug)]
pub struct Rereadable {
    file: File,
    pub len: u64,
    pub name: String,
}

impl Rereadable {
    pub fn open(input: &Input) -> io::Result<Rereadable> {
        match input {
            Input::Path(p) => {
                let file = File::open(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                let len = file.metadata()?.len();
                Ok(Rereadable { file, len, name: p.display().to_string() })
            }
            Input::Stdin => {
                let mut spool = tempfile::tempfile()?;
                let len = io::copy(&mut io::stdin().lock(), &mut spool)?;
                spool.flush()?;
                Ok(Rereadable { file: spool, len, name: "stdin".into() })
            }
        }
    }

    /// A fresh reader from the first byte, hashing as it goes and counting into `progress`.
    pub fn reader(&self, progress: Arc<AtomicU64>) -> io::Result<HashingReader<File>> {
        let mut file = self.file.try_clone()?;
        file.rewind()?;
        progress.store(0, Ordering::Relaxed);
        Ok(HashingReader { inner: file, hasher: Sha256::new(), bytes: 0, progress })
    }
}

/// Reads through, computing SHA-256 and the byte count.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    progress: Arc<AtomicU64>,
}

impl<R> HashingReader<R> {
    /// Hex SHA-256 and length of everything read so far.
    pub fn finish(self) -> (String, u64) {
        let digest = self.hasher.finalize();
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        (hex, self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
