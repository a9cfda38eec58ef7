//! Static password hashing for local users: argon2id with the crate's recommended parameters
//! (19 MiB, 2 passes), a fresh 16-byte salt from the OS per hash, PHC strings at rest.
//! Verification is CPU-bound, so callers run it on the blocking pool, a bounded number at a
//! time, each in one of a few argon2 memory blocks that live as long as the process.

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use countersign_core::Secret;
use subtle::ConstantTimeEq;

use crate::system::random_bytes;

/// argon2 refused to hash (it does so only for parameters or inputs out of its range).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash password: {0}")]
pub struct HashError(argon2::password_hash::Error);

pub fn hash(password: &Secret) -> Result<String, HashError> {
    let salt = random_bytes(16);
    Argon2::default()
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(HashError)
}

/// Whether `password` matches the PHC string `phc` (any argon2 variant, version and
/// parameters the string names). Runs in a memory block taken from [`blocks`], so a stream of
/// checks does not allocate 19 MiB each: glibc raises its mmap threshold after the first large
/// free, keeps later blocks in its arenas, and RSS grew by hundreds of MB under load.
pub fn verify(password: &Secret, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    // The output length comes from the stored hash (argon2's own PHC verification does the same).
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut computed = vec![0u8; expected.len()];
    let mut memory = blocks().take(argon2.params().block_count());
    let hashed = argon2.hash_password_into_with_memory(
        password.expose().as_bytes(),
        salt.as_ref(),
        &mut computed,
        &mut memory.blocks[..argon2.params().block_count()],
    );
    blocks().give_back(memory);
    // Constant time: how much of a guess matches must not show in the time taken.
    hashed.is_ok() && bool::from(computed.as_slice().ct_eq(expected.as_ref()))
}

/// One argon2 working memory (`m_cost` blocks of 1 KiB).
struct Memory {
    blocks: Vec<Block>,
}

/// Argon2 working memories kept for reuse: at most one per permit is kept (one per CPU), so the
/// process holds at most cores × 19 MiB for password checks however many run.
struct MemoryPool {
    free: Mutex<Vec<Memory>>,
    keep: usize,
    /// Memories made because none was free (the test checks it stays at one per permit).
    #[cfg(test)]
    made: std::sync::atomic::AtomicUsize,
}

impl MemoryPool {
    /// A memory of at least `len` blocks: a kept one when there is one, grown if a stored hash
    /// asks for more than the default parameters.
    fn take(&self, len: usize) -> Memory {
        let kept = self.free.lock().ok().and_then(|mut f| f.pop());
        #[cfg(test)]
        if kept.is_none() {
            self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let mut memory = kept.unwrap_or(Memory { blocks: Vec::new() });
        if memory.blocks.len() < len {
            memory.blocks.resize(len, Block::new());
        }
        memory
    }

    fn give_back(&self, memory: Memory) {
        if let Ok(mut free) = self.free.lock()
            && free.len() < self.keep
        {
            free.push(memory);
        }
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

fn blocks() -> &'static MemoryPool {
    static POOL: OnceLock<MemoryPool> = OnceLock::new();
    POOL.get_or_init(|| MemoryPool {
        free: Mutex::new(Vec::new()),
        keep: cpus(),
        #[cfg(test)]
        made: std::sync::atomic::AtomicUsize::new(0),
    })
}

/// At most this many argon2 verifications run at once: one per CPU. More would not finish
/// sooner; they would only share the cores and thrash the caches with 19 MiB each, so under load
/// the queue is the better place to wait (measured: bench/README.md).
fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(cpus()))
}

/// [`verify`] on the blocking pool, a bounded number at a time. The permit travels with the
/// check, not with the caller: a caller that goes away (a client that hangs up mid-bind) cannot
/// free its slot while its check still runs, so the bound holds however clients behave.
pub async fn verify_async(password: &Secret, phc: &str) -> bool {
    let Ok(permit) = permits().acquire().await else {
        return false;
    };
    let (password, phc) = (password.clone(), phc.to_owned());
    tokio::task::spawn_blocking(move || {
        let matched = verify(&password, &phc);
        drop(permit);
        matched
    })
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

    /// Hashes with other variants, versions, parameters and output lengths than ours (as an
    /// older release or an import may have stored) verify as argon2's own verifier says.
    #[test]
    fn hashes_with_other_parameters_still_verify() {
        let pw = Secret::new("password");
        let variants = [
            (
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(64, 2, 1, None),
            ),
            (
                Algorithm::Argon2d,
                Version::V0x10,
                Params::new(32, 1, 1, Some(16)),
            ),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(256, 1, 2, Some(64)),
            ),
            // More memory than the default: the kept block grows.
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(24 * 1024, 1, 1, None),
            ),
        ];
        for (algorithm, version, params) in variants {
            let phc = Argon2::new(algorithm, version, params.unwrap())
                .hash_password_with_salt(pw.expose().as_bytes(), b"somesaltsomesalt")
                .unwrap()
                .to_string();
            assert!(verify(&pw, &phc), "{phc}");
            assert!(!verify(&Secret::new("passwore"), &phc), "{phc}");
        }
    }

    #[test]
    fn a_truncated_or_altered_hash_fails() {
        let pw = Secret::new("correct horse");
        let good = hash(&pw).unwrap();
        let (head, tail) = good.rsplit_once('$').unwrap();
        assert!(!verify(&pw, &format!("{head}${}", &tail[..tail.len() - 4])));
        let flipped: String = tail
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == 3 {
                    if c == 'A' { 'B' } else { 'A' }
                } else {
                    c
                }
            })
            .collect();
        assert!(!verify(&pw, &format!("{head}${flipped}")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_concurrent_checks_give_the_right_answers() {
        let pw = Secret::new("correct horse");
        let other = Secret::new("battery staple");
        let a = hash(&pw).unwrap();
        let b = hash(&other).unwrap();
        let mut tasks = Vec::new();
        for i in 0..48 {
            let (a, b, pw, other) = (a.clone(), b.clone(), pw.clone(), other.clone());
            tasks.push(tokio::spawn(async move {
                match i % 4 {
                    0 => verify_async(&pw, &a).await,
                    1 => !verify_async(&other, &a).await,
                    2 => verify_async(&other, &b).await,
                    _ => !verify_async(&pw, &b).await,
                }
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        let kept = blocks().free.lock().unwrap().len();
        assert!(kept <= cpus(), "{kept} memories kept for {} CPUs", cpus());
        // 48 checks, yet no more memories made than checks may run at once: they were reused.
        let made = blocks().made.load(std::sync::atomic::Ordering::SeqCst);
        assert!(made <= cpus(), "{made} memories made for {} CPUs", cpus());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_whose_caller_went_away_keeps_its_slot_until_it_finishes() {
        // A slow hash (many passes) so the check is surely still running when its caller is
        // dropped.
        let slow = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 60, 1, None).unwrap(),
        )
        .hash_password_with_salt(b"pw", &[7u8; 16])
        .unwrap()
        .to_string();
        let all = permits().available_permits();
        let caller = tokio::spawn(async move { verify_async(&Secret::new("pw"), &slow).await });
        while permits().available_permits() == all {
            tokio::task::yield_now().await;
        }
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        assert_eq!(
            permits().available_permits(),
            all - 1,
            "the check still runs, so its slot is still taken"
        );
        let t0 = std::time::Instant::now();
        while permits().available_permits() < all {
            assert!(t0.elapsed() < std::time::Duration::from_secs(30));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
