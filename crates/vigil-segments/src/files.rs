//! File names of a log directory and small file helpers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::Error;

/// The lock file's name.
pub(crate) const LOCK: &str = "LOCK";

/// The kinds of file a log keeps per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `{id:020}.seg`: the records as written.
    Seg,
    /// `{id:020}.idx`: a sealed segment's index sidecar.
    Idx,
    /// `{id:020}.lz4`: a sealed segment, compressed.
    Lz4,
}

impl Kind {
    fn ext(self) -> &'static str {
        match self {
            Kind::Seg => "seg",
            Kind::Idx => "idx",
            Kind::Lz4 => "lz4",
        }
    }
}

/// What a directory entry's name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    Lock,
    File(u64, Kind),
    /// A leftover temporary file of the log's own naming.
    Tmp,
}

/// The path of segment `id`'s file of `kind`.
pub(crate) fn path(dir: &Path, id: u64, kind: Kind) -> PathBuf {
    dir.join(format!("{id:020}.{}", kind.ext()))
}

/// The temporary path a file of `kind` is written to before its rename.
pub(crate) fn tmp_path(dir: &Path, id: u64, kind: Kind) -> PathBuf {
    dir.join(format!("{id:020}.{}.tmp", kind.ext()))
}

/// Parses a directory entry's name.
pub(crate) fn parse(name: &str) -> Option<Name> {
    if name == LOCK {
        return Some(Name::Lock);
    }
    let (stem, tmp) = match name.strip_suffix(".tmp") {
        Some(s) => (s, true),
        None => (name, false),
    };
    let (digits, ext) = stem.split_once('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u64 = digits.parse().ok()?;
    let kind = match ext {
        "seg" => Kind::Seg,
        "idx" => Kind::Idx,
        "lz4" => Kind::Lz4,
        _ => return None,
    };
    Some(if tmp { Name::Tmp } else { Name::File(id, kind) })
}

/// An [`Error::Io`] naming `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes the directory's entries durable (new and renamed files).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dest` atomically: a temporary file, fsynced, renamed
/// over `dest`, then the directory fsynced.
pub(crate) fn write_atomic(dir: &Path, tmp: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        fs::rename(tmp, dest)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Removes a file; one that is already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns
/// the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(parse("LOCK"), Some(Name::Lock));
        assert_eq!(
            parse("00000000000000000042.seg"),
            Some(Name::File(42, Kind::Seg))
        );
        assert_eq!(
            parse("00000000000000000042.idx"),
            Some(Name::File(42, Kind::Idx))
        );
        assert_eq!(
            parse("00000000000000000042.lz4"),
            Some(Name::File(42, Kind::Lz4))
        );
        assert_eq!(parse("00000000000000000042.idx.tmp"), Some(Name::Tmp));
        assert_eq!(parse("0000000000000000042.seg"), None);
        assert_eq!(parse("0000000000000000004x.seg"), None);
        assert_eq!(parse("00000000000000000042.log"), None);
        assert_eq!(parse("notes.txt"), None);
        assert_eq!(parse("x.tmp"), None);
        let p = path(Path::new("/d"), 7, Kind::Seg);
        assert_eq!(p, Path::new("/d/00000000000000000007.seg"));
    }
}
