//! Key generation, key and certificate files (with safe permissions and fsync), CSRs and PEM.
//! A private key file is created 0600 from the start and is refused on load if others can read it.

use crate::CertError;
use poros_protocol::AgencyId;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A fresh ECDSA P-256 key pair.
pub fn generate_key() -> Result<rcgen::KeyPair, CertError> {
    Ok(rcgen::KeyPair::generate_for(
        &rcgen::PKCS_ECDSA_P256_SHA256,
    )?)
}

/// Create `path` with mode 0600 and write `contents`, refusing to overwrite an existing file.
///
/// The mode is set at creation, so the secret is never briefly world-readable; the file and its
/// directory are synced so a crash cannot leave a certificate without its key.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create", path))?;
    write_and_sync(file, path, contents)
}

/// Create or truncate `path` with mode 0644 and write `contents` (certificates, CRLs).
pub fn write_public_file(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .map_err(io_err("create", path))?;
    write_and_sync(file, path, contents)
}

fn write_and_sync(mut file: File, path: &Path, contents: &[u8]) -> Result<(), CertError> {
    file.write_all(contents).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("sync", path))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", parent))
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CertError + 'a {
    move |source| CertError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Load a PEM private key, refusing a file that group or others can read.
pub fn load_key_pem(path: &Path) -> Result<rcgen::KeyPair, CertError> {
    let mut file = File::open(path).map_err(io_err("open", path))?;
    let mode = file
        .metadata()
        .map_err(io_err("stat", path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(CertError::KeyFileTooOpen {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    let mut pem = String::new();
    file.read_to_string(&mut pem)
        .map_err(io_err("read", path))?;
    rcgen::KeyPair::from_pem(&pem).map_err(|e| CertError::BadKey {
        what: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A PEM CSR for `agency`: CN = agency code, URI SAN = agency URI.
///
/// The CA overwrites all of this when issuing; the fields only help a human reading the request.
pub fn make_csr(key: &rcgen::KeyPair, agency: &AgencyId) -> Result<String, CertError> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, agency.as_str());
    params.subject_alt_names = vec![rcgen::SanType::URI(agency.to_uri().try_into()?)];
    Ok(params.serialize_request(key)?.pem()?)
}

/// A CSR carrying only `key` (CN = `common_name`), e.g. for the hub's server certificate.
pub fn make_key_csr(key: &rcgen::KeyPair, common_name: &str) -> Result<String, CertError> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    Ok(params.serialize_request(key)?.pem()?)
}

/// All certificates in PEM text, as DER, in order; an error if there are none.
pub fn pem_to_der_certs(pem: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(certs)
}

/// A DER certificate as PEM.
pub fn der_to_pem_cert(der: &[u8]) -> String {
    der_to_pem("CERTIFICATE", der)
}

/// The key pair as PKCS#8 DER (what rustls and `SigningKey::from_pkcs8` take).
pub fn key_pkcs8_der(key: &rcgen::KeyPair) -> Vec<u8> {
    key.serialize_der()
}

pub(crate) fn der_to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Every chunk boundary falls on an ASCII character, so the slices below are valid UTF-8.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// Encoding only; a small local encoder avoids pulling another crate into the lock file.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn secret_file_is_0600_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = generate_key().unwrap();
        write_secret_file(&path, key.serialize_pem().as_bytes()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = load_key_pem(&path).unwrap();
        assert_eq!(loaded.public_key_raw(), key.public_key_raw());

        let err = write_secret_file(&path, b"other").unwrap_err();
        assert!(err.to_string().contains("node.key"), "{err}");
        assert_eq!(
            load_key_pem(&path).unwrap().public_key_raw(),
            key.public_key_raw()
        );
    }

    #[test]
    fn world_readable_key_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open.key");
        write_public_file(&path, generate_key().unwrap().serialize_pem().as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_key_pem(&path).unwrap_err();
        assert!(
            matches!(err, CertError::KeyFileTooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("open.key"), "{err}");
    }

    #[test]
    fn garbage_key_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.key");
        write_secret_file(&path, b"not a key").unwrap();
        let err = load_key_pem(&path).unwrap_err();
        assert!(matches!(err, CertError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains("junk.key"), "{err}");
    }

    #[test]
    fn public_file_is_0644_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        write_public_file(&path, b"a longer first version").unwrap();
        write_public_file(&path, b"short").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644 & !umask());
    }

    fn umask() -> u32 {
        // Cannot read the umask without unsafe; infer it from a freshly created file.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("probe");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o777)
            .open(&p)
            .unwrap();
        !std::fs::metadata(&p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn pem_round_trip_and_empty_input() {
        let key = generate_key().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let two = format!("{}{}", der_to_pem_cert(cert.der()), cert.pem());
        let ders = pem_to_der_certs(&two).unwrap();
        assert_eq!(ders, vec![cert.der().to_vec(), cert.der().to_vec()]);
        assert!(matches!(
            pem_to_der_certs("nothing here"),
            Err(CertError::NoCertificate)
        ));
    }

    #[test]
    fn pkcs8_loads_as_protocol_signing_key() {
        let key = generate_key().unwrap();
        let sk = poros_protocol::SigningKey::from_pkcs8(&key_pkcs8_der(&key)).unwrap();
        assert_eq!(sk.public_key(), key.public_key_raw());
    }
}
