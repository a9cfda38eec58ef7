//! The demo's own TLS: at its first start, a test certificate authority (self-signed) and a
//! server certificate it signs for `127.0.0.1`, `::1` and `localhost`, so StartTLS and LDAPS
//! work out of the box and clients can verify the server (`LDAPTLS_CACERT=<demo>/ca.pem`)
//! instead of being told to skip verification. Made with rcgen (ring), not the openssl command.
//!
//! The CA's private key is never written: once the server certificate is signed it is dropped,
//! so trusting `ca.pem` trusts this one certificate and nothing anyone could sign later.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The demo's TLS files, all in its folder and readable by its owner only.
pub struct DemoTls {
    /// The test CA's certificate: what clients are told to trust.
    pub ca: PathBuf,
    /// The server certificate followed by the CA's (the chain the LDAP front presents).
    pub cert: PathBuf,
    /// The server certificate's private key (PKCS #8).
    pub key: PathBuf,
}

/// How long the certificates are valid. A demo folder kept longer gets new ones at a start
/// after [`RENEW_AFTER`].
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
const RENEW_AFTER: Duration = Duration::from_secs(358 * 24 * 3600);
/// Clocks of clients a little behind ours still accept a certificate made just now.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The names the server certificate is valid for: the demo listens on loopback.
const SERVER_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

impl DemoTls {
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }

    /// Whether the files of an earlier start are all there and not due for renewal.
    fn reusable(&self) -> bool {
        let fresh = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|made| SystemTime::now().duration_since(made).ok())
                .is_some_and(|age| age < RENEW_AFTER)
        };
        fresh(&self.cert) && self.key.is_file() && self.ca.is_file()
    }
}

/// The demo's CA and server certificate in `dir`: those of an earlier start when present,
/// otherwise new ones. Returns whether they were made now.
pub fn ensure(dir: &Path) -> anyhow::Result<(DemoTls, bool)> {
    let files = DemoTls::in_dir(dir);
    if files.reusable() {
        return Ok((files, false));
    }
    let made = generate(SystemTime::now())?;
    // The key and chain first, the CA last: a start interrupted half-way leaves no `ca.pem`,
    // so the next one makes everything again.
    let _ = std::fs::remove_file(&files.ca);
    write_private(&files.key, &made.key)?;
    write_private(&files.cert, &format!("{}{}", made.cert, made.ca))?;
    write_private(&files.ca, &made.ca)?;
    Ok((files, true))
}

/// PEM texts of a new CA certificate, server certificate and server key.
struct Made {
    ca: String,
    cert: String,
    key: String,
}

fn generate(now: SystemTime) -> anyhow::Result<Made> {
    let not_before = time::OffsetDateTime::from(now - BACKDATE);
    let not_after = time::OffsetDateTime::from(now + VALIDITY);

    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "countersign demo CA (test only)");
    // May sign end-entity certificates only (path length 0).
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let names: Vec<String> = SERVER_NAMES.iter().map(|n| (*n).to_owned()).collect();
    let mut server = CertificateParams::new(names)?;
    server.distinguished_name = rcgen::DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    (server.not_before, server.not_after) = (not_before, not_after);
    let server_key = KeyPair::generate()?;
    let issuer = Issuer::new(ca, ca_key);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    Ok(Made {
        ca: ca_cert.pem(),
        cert: server_cert.pem(),
        key: server_key.serialize_pem(),
    })
}

/// Writes `text` to `path` as a new file readable by its owner only (an older file there is
/// replaced, never opened for writing with wider permissions).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

    /// What a client that trusts only `ca.pem` does: verify the chain for the demo's names.
    fn verify(files: &DemoTls, name: &str) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&files.ca).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .unwrap();
        let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(&files.cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn a_client_trusting_the_demo_ca_accepts_the_server_for_loopback_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let (files, made) = ensure(dir.path()).unwrap();
        assert!(made);
        for name in SERVER_NAMES {
            verify(&files, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verify(&files, "example.com").is_err());
        assert!(verify(&files, "10.0.0.1").is_err());
        assert!(PrivateKeyDer::from_pem_file(&files.key).is_ok());
        // The CA's key is nowhere in the folder.
        let everything: String = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(
            everything.matches("-----BEGIN").count(),
            4,
            "CA, server twice, key"
        );
        assert_eq!(
            everything.matches("PRIVATE KEY-----").count(),
            2,
            "BEGIN and END"
        );
    }

    #[test]
    fn the_files_are_private_and_reused_until_due_for_renewal() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = ensure(dir.path()).unwrap();
        for p in [&files.ca, &files.cert, &files.key] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
        let ca = std::fs::read(&files.ca).unwrap();
        let (again, made) = ensure(dir.path()).unwrap();
        assert!(!made);
        assert_eq!(std::fs::read(&again.ca).unwrap(), ca);

        // A missing piece, or a certificate near its end: everything is made anew.
        std::fs::remove_file(&files.key).unwrap();
        let (_, made) = ensure(dir.path()).unwrap();
        assert!(made);
        assert_ne!(std::fs::read(&files.ca).unwrap(), ca);
        let old = SystemTime::now() - RENEW_AFTER - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&files.cert)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let (_, made) = ensure(dir.path()).unwrap();
        assert!(made);
    }
}
