//! Every secret-handling primitive in one place: constant-time comparison, the keyed hash under
//! which OTPs are stored, and hex encoding of keys. Nothing ad hoc elsewhere. Random values come
//! from the generator module, which owns the `Random` port's use, so this module depends on
//! nothing but the model (no cycle crypto → ports → secret → crypto).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::model::UserKey;

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Hashes OTPs under a server-wide secret key (HMAC-SHA-256), bound to the user they were issued
/// to, so the store holds nothing that verifies without the key file and a hash cannot be moved
/// from one user to another.
#[derive(Clone)]
pub struct OtpHasher {
    key: Vec<u8>,
}

impl std::fmt::Debug for OtpHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpHasher(<key redacted>)")
    }
}

/// Shortest accepted key: 128 bits.
pub const MIN_KEY_LEN: usize = 16;

impl OtpHasher {
    /// `key` must hold at least [`MIN_KEY_LEN`] bytes.
    pub fn new(key: &[u8]) -> Option<Self> {
        (key.len() >= MIN_KEY_LEN).then(|| Self { key: key.to_vec() })
    }

    pub fn hash(&self, user: &UserKey, otp: &str) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail; fall back to an empty MAC
        // rather than panic, which would then never verify.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Vec::new();
        };
        for part in [
            user.directory.as_bytes(),
            user.dn.as_bytes(),
            otp.as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    pub fn verify(&self, user: &UserKey, otp: &str, stored: &[u8]) -> bool {
        let candidate = self.hash(user, otp);
        !candidate.is_empty() && ct_eq(&candidate, stored)
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` is exactly what [`to_hex`] writes for `bytes` random bytes (lower-case hex
/// of that length): ids and tokens of any other shape are refused before a store is asked.
pub fn is_hex_of(text: &str, bytes: usize) -> bool {
    text.len() == 2 * bytes
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Inverse of [`to_hex`]; `None` for anything that is not an even number of hex digits.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(dn: &str) -> UserKey {
        UserKey {
            directory: "local".into(),
            dn: dn.into(),
        }
    }

    #[test]
    fn hash_is_keyed_and_bound_to_the_user() {
        let h = OtpHasher::new(&[7u8; 32]).unwrap();
        let other_key = OtpHasher::new(&[8u8; 32]).unwrap();
        let stored = h.hash(&user("uid=a"), "123456");
        assert!(h.verify(&user("uid=a"), "123456", &stored));
        assert!(!h.verify(&user("uid=a"), "123457", &stored));
        assert!(!h.verify(&user("uid=b"), "123456", &stored));
        assert!(!other_key.verify(&user("uid=a"), "123456", &stored));
        assert!(!stored.windows(6).any(|w| w == b"123456"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(OtpHasher::new(&[1u8; 8]).is_none());
    }

    #[test]
    fn ct_eq_compares_lengths_and_bytes() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
