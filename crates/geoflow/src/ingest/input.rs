//! The bytes of one source: a file read twice (schema pass, load pass), or stdin spooled to a
//! temporary file first. The schema pass takes the content's SHA-256 on a thread of its own;
//! both passes take a fast fingerprint of the bytes as they frame them, so that a file that
//! changes between the passes is caught without hashing it twice.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

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

/// A source that can be read from the start as often as needed, and opened by path for the
/// formats that need random access.
#[derive(Debug)]
pub struct Rereadable {
    file: File,
    pub len: u64,
    pub name: String,
    pub path: PathBuf,
    /// Where stdin was spooled; removed when the source goes.
    _spool: Option<tempfile::TempPath>,
}

impl Rereadable {
    pub fn open(input: &Input) -> io::Result<Rereadable> {
        match input {
            Input::Path(p) => {
                let file = File::open(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                let len = file.metadata()?.len();
                Ok(Rereadable { file, len, name: p.display().to_string(), path: p.clone(), _spool: None })
            }
            Input::Stdin => {
                let mut spool = tempfile::Builder::new().prefix("geoflow-stdin-").tempfile()?;
                let len = io::copy(&mut io::stdin().lock(), &mut spool)?;
                spool.flush()?;
                let (file, path) = spool.into_parts();
                Ok(Rereadable { file, len, name: "stdin".into(), path: path.to_path_buf(), _spool: Some(path) })
            }
        }
    }

    /// A fresh reader from the first byte, counting into `progress`.
    pub fn reader(&self, progress: Arc<AtomicU64>) -> io::Result<CountingReader<File>> {
        let mut file = self.file.try_clone()?;
        file.rewind()?;
        progress.store(0, Ordering::Relaxed);
        Ok(CountingReader { inner: file, progress, fingerprint: Xxh3::new(), len: 0 })
    }

    /// Hex SHA-256 and length of the content. Reads at explicit offsets, so it may run beside
    /// a [`Rereadable::reader`].
    pub fn digest(&self) -> io::Result<(String, u64)> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut offset = 0u64;
        loop {
            let n = match self.file.read_at(&mut buf, offset) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok((hex, offset))
    }
}

/// The XXH3 (128-bit) digest of everything read, and its length: not a content identity, but
/// what tells that the bytes of one pass are those of the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub digest: u128,
    pub len: u64,
}

/// Reads through, counting the bytes for a progress display and fingerprinting them.
pub struct CountingReader<R> {
    inner: R,
    progress: Arc<AtomicU64>,
    fingerprint: Xxh3,
    len: u64,
}

impl<R: Read> CountingReader<R> {
    /// Reads what is left, then fingerprints all of it.
    pub fn finish(mut self) -> io::Result<Fingerprint> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(Fingerprint { digest: self.fingerprint.digest128(), len: self.len })
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.fingerprint.update(&buf[..n]);
        self.len += n as u64;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(path: &Path, read_first: usize) -> Fingerprint {
        let source = Rereadable::open(&Input::Path(path.to_path_buf())).unwrap();
        let mut reader = source.reader(Arc::new(AtomicU64::new(0))).unwrap();
        reader.read_exact(&mut vec![0; read_first]).unwrap();
        reader.finish().unwrap()
    }

    #[test]
    fn fingerprints_cover_every_byte_and_tell_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.geojson");
        let text = format!("{{\"type\":\"FeatureCollection\",\"features\":[]}}{}", " ".repeat(3 << 20));
        std::fs::write(&path, &text).unwrap();
        let whole = fingerprint(&path, 0);
        assert_eq!(whole.len, text.len() as u64);
        // What framing left unread is read by `finish`.
        assert_eq!(fingerprint(&path, 10), whole);
        // The same length with one byte changed, far from the start.
        let mut changed = text.into_bytes();
        changed[2 << 20] = b'\n';
        std::fs::write(&path, &changed).unwrap();
        let after = fingerprint(&path, 0);
        assert_eq!(after.len, whole.len);
        assert_ne!(after, whole);
    }
}
