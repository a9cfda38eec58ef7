//! Keyed token buckets: `burst` attempts at once, refilled evenly over `period`. One limiter per
//! (operation, key kind); the use cases consult them before doing any work, so an attacker can
//! neither bomb a user's phone with codes nor guess OTPs quickly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::model::Timestamp;

/// `burst` attempts per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub period: Duration,
}

impl Rate {
    /// Parses `N/DURATION` as written in the config, e.g. `5/1m`; the duration is parsed by the
    /// caller-supplied function so the core needs no duration syntax of its own.
    pub fn parse(text: &str, parse_duration: impl Fn(&str) -> Option<Duration>) -> Option<Rate> {
        let (n, period) = text.split_once('/')?;
        let burst: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
        let period = parse_duration(period.trim()).filter(|d| !d.is_zero())?;
        Some(Rate { burst, period })
    }
}

/// Full buckets are forgotten when the map outgrows its threshold; the threshold then doubles
/// over what is left, so sweeping costs O(1) per key amortised.
const FIRST_SWEEP_AT: usize = 10_000;
/// Beyond this many keys that are all still counting, new keys are refused outright: a flood
/// of distinct identities must not grow memory without bound.
const MAX_KEYS: usize = 1_000_000;

#[derive(Debug)]
struct Buckets {
    map: HashMap<String, (f64, Timestamp)>,
    sweep_at: usize,
}

#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: FIRST_SWEEP_AT,
            }),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str, now: Timestamp) -> Result<(), Duration> {
        let per_ms = f64::from(self.rate.burst) / self.rate.period.as_millis().max(1) as f64;
        let burst = f64::from(self.rate.burst);
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock means a panic elsewhere; fail open rather than lock everyone out.
            return Ok(());
        };
        let b = &mut *buckets;
        if !b.map.contains_key(key) {
            if b.map.len() >= b.sweep_at {
                b.map.retain(|_, (tokens, at)| {
                    *tokens + (now.0 - at.0).max(0) as f64 * per_ms < burst
                });
                b.sweep_at = (b.map.len() * 2).max(FIRST_SWEEP_AT);
            }
            if b.map.len() >= MAX_KEYS {
                return Err(self.rate.period);
            }
        }
        let (tokens, at) = b.map.entry(key.to_owned()).or_insert((burst, now));
        let elapsed = (now.0 - at.0).max(0) as f64;
        *tokens = (*tokens + elapsed * per_ms).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - *tokens) / per_ms).ceil();
            Err(Duration::from_millis(wait_ms as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_then_refill() {
        let l = RateLimiter::new(Rate {
            burst: 3,
            period: Duration::from_secs(60),
        });
        let t = Timestamp(1_000_000);
        for _ in 0..3 {
            assert!(l.check("alice", t).is_ok());
        }
        let wait = l.check("alice", t).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        assert!(l.check("bob", t).is_ok(), "keys are independent");
        assert!(l.check("alice", t.plus(Duration::from_secs(19))).is_err());
        assert!(l.check("alice", t.plus(Duration::from_secs(21))).is_ok());
    }

    #[test]
    fn forgotten_keys_are_swept_and_memory_stays_bounded() {
        let l = RateLimiter::new(Rate {
            burst: 1,
            period: Duration::from_secs(1),
        });
        let t = Timestamp(0);
        for i in 0..FIRST_SWEEP_AT {
            l.check(&format!("k{i}"), t).unwrap();
        }
        // Two seconds later every bucket is full again, so the next new key sweeps them all.
        l.check("late", t.plus(Duration::from_secs(2))).unwrap();
        assert_eq!(l.buckets.lock().unwrap().map.len(), 1);
    }

    #[test]
    fn parse_rate() {
        let d = |s: &str| (s == "1m").then_some(Duration::from_secs(60));
        assert_eq!(
            Rate::parse("5/1m", d),
            Some(Rate {
                burst: 5,
                period: Duration::from_secs(60)
            })
        );
        assert_eq!(Rate::parse("0/1m", d), None);
        assert_eq!(Rate::parse("5", d), None);
        assert_eq!(Rate::parse("5/xx", d), None);
    }
}
