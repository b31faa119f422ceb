//! The secret the DMS and the facade share: made here from the system's random generator,
//! written once with mode 0600 in the agent directory, never sent anywhere by Poros (the
//! administrator copies it into the DMS's configuration), and refused when its file became
//! readable by others.

use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Bytes of randomness in a secret (written as 64 hex digits).
const SECRET_BYTES: usize = 32;

/// Read the secret at `path`: its text, without surrounding whitespace, is the HMAC key.
pub fn load(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading the SDK secret {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the SDK secret {} has mode {mode:o}; it must be readable by its owner only (chmod 600)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the SDK secret {}", path.display()))?;
    let s = text.trim();
    if s.len() < 16 {
        bail!(
            "the SDK secret {} is shorter than 16 characters",
            path.display()
        );
    }
    Ok(s.as_bytes().to_vec())
}

/// The secret at `path`, made first if there is none (`rotate`: replace it). Returns it and
/// whether it is new.
pub fn ensure(path: &Path, rotate: bool) -> Result<(String, bool)> {
    if path.exists() && !rotate {
        let s = load(path)?;
        return Ok((
            String::from_utf8(s).context("the SDK secret is not text")?,
            false,
        ));
    }
    let mut raw = [0u8; SECRET_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let secret = hex::encode(raw);
    // Written beside and renamed over, so a rotation never leaves a half-written secret.
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    poros_certs::write_secret_file(&tmp, format!("{secret}\n").as_bytes())?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("installing the SDK secret {}", path.display()))?;
    if let Some(dir) = path.parent() {
        poros_store::fsync_dir(dir)?;
    }
    Ok((secret, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_made_once_0600_and_refused_once_readable_by_others() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vdxp.secret");
        let (s, new) = ensure(&p, false).unwrap();
        assert!(new);
        assert_eq!(s.len(), 64);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, new) = ensure(&p, false).unwrap();
        assert_eq!((again.as_str(), new), (s.as_str(), false));
        assert_eq!(load(&p).unwrap(), s.as_bytes());
        let (rotated, new) = ensure(&p, true).unwrap();
        assert!(new && rotated != s);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("644") && e.contains("chmod 600"), "{e}");
    }
}
