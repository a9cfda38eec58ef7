//! Static password hashing for local users: argon2id with the crate's recommended parameters
//! (19 MiB, 2 passes), a fresh 16-byte salt from the OS per hash, PHC strings at rest.
//! Verification is CPU-bound, so callers run it on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use countersign_core::Secret;

use crate::system::random_bytes;

pub fn hash(password: &Secret) -> Result<String, String> {
    let salt = random_bytes(16);
    Argon2::default()
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

pub fn verify(password: &Secret, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// At most this many argon2 verifications run at once: one per CPU. More would not finish
/// sooner; they would only share the cores and thrash the caches with 19 MiB each, so under load
/// the queue is the better place to wait (measured: bench/README.md).
fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        tokio::sync::Semaphore::new(n)
    })
}

/// [`verify`] on the blocking pool, a bounded number at a time.
pub async fn verify_async(password: &Secret, phc: &str) -> bool {
    let Ok(_permit) = permits().acquire().await else {
        return false;
    };
    let (password, phc) = (password.clone(), phc.to_owned());
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

/// A hash of nothing in particular, verified against for unknown users so they take as long to
/// refuse as a wrong password. Made once per process.
pub fn dummy_hash() -> String {
    hash(&Secret::new("countersign dummy password")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let pw = Secret::new("correct horse");
        let a = hash(&pw).unwrap();
        let b = hash(&pw).unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify(&pw, &a));
        assert!(!verify(&Secret::new("wrong"), &a));
        assert!(!verify(&pw, "not a phc string"));
    }
}
