//! Handing a directory tree that root created over to the service user that owns its top
//! (a packaged `init` or `enroll` run as root): modes are kept, only root's entries change.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::StoreError;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Give every entry under `dir` that root owns to `uid`:`gid` (symbolic links themselves,
/// not their targets), recursively.
pub fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(io_err("list directory", dir))? {
        let path = entry.map_err(io_err("list directory", dir))?.path();
        let meta = path
            .symlink_metadata()
            .map_err(io_err("read metadata of", &path))?;
        if meta.uid() == 0 {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(io_err("give to the service user", &path))?;
        }
        if meta.is_dir() {
            chown_tree(&path, uid, gid)?;
        }
    }
    Ok(())
}
