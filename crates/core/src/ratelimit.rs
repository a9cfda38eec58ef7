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

/// Above this many tracked keys, full buckets are forgotten before a new key is added.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, (f64, Timestamp)>>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
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
        if buckets.len() > PRUNE_ABOVE && !buckets.contains_key(key) {
            buckets
                .retain(|_, (tokens, at)| *tokens + (now.0 - at.0).max(0) as f64 * per_ms < burst);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
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
