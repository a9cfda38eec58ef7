//! The Random Password Generator of PingDirectory (spec §10): named character sets and a format
//! such as `numeric:6` or `alpha:3,numeric:2,alpha:3`, each group drawn uniformly from its set
//! with a CSPRNG (rejection sampling, so no set is biased by a modulo).

use std::collections::BTreeMap;
use thiserror::Error;

use crate::crypto::to_hex;
use crate::ports::Random;
use crate::secret::Secret;

/// A random identifier: `bytes` CSPRNG bytes, hex-encoded.
pub fn random_hex(random: &dyn Random, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    random.fill(&mut buf);
    to_hex(&buf)
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GeneratorError {
    #[error("character set {0:?} is empty")]
    EmptySet(String),
    #[error("character set {0:?} repeats the character {1:?}")]
    RepeatedCharacter(String, char),
    #[error("character set {0:?} has more than 256 characters")]
    SetTooLarge(String),
    #[error("format is empty")]
    EmptyFormat,
    #[error("format group {0:?} is not name:count")]
    BadGroup(String),
    #[error("format group {0:?} names no configured character set")]
    UnknownSet(String),
    #[error("format group {0:?} needs a count from 1 to 64")]
    BadCount(String),
    #[error("format makes passwords of {0} characters; at most 128 are allowed")]
    TooLong(usize),
}

#[derive(Debug, Clone)]
pub struct PasswordGenerator {
    groups: Vec<(Vec<char>, usize)>,
}

impl PasswordGenerator {
    /// `sets` maps a set name to its characters; `format` is `name:count[,name:count...]`.
    pub fn new(sets: &BTreeMap<String, String>, format: &str) -> Result<Self, GeneratorError> {
        let mut parsed: BTreeMap<&str, Vec<char>> = BTreeMap::new();
        for (name, chars) in sets {
            let mut seen = Vec::new();
            for c in chars.chars() {
                if seen.contains(&c) {
                    return Err(GeneratorError::RepeatedCharacter(name.clone(), c));
                }
                seen.push(c);
            }
            if seen.is_empty() {
                return Err(GeneratorError::EmptySet(name.clone()));
            }
            if seen.len() > 256 {
                return Err(GeneratorError::SetTooLarge(name.clone()));
            }
            parsed.insert(name.as_str(), seen);
        }
        if format.trim().is_empty() {
            return Err(GeneratorError::EmptyFormat);
        }
        let mut groups = Vec::new();
        let mut total = 0usize;
        for group in format.split(',') {
            let group = group.trim();
            let (name, count) = group
                .split_once(':')
                .ok_or_else(|| GeneratorError::BadGroup(group.to_owned()))?;
            let chars = parsed
                .get(name.trim())
                .ok_or_else(|| GeneratorError::UnknownSet(group.to_owned()))?;
            let count: usize = count
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| GeneratorError::BadCount(group.to_owned()))?;
            total += count;
            groups.push((chars.clone(), count));
        }
        if total > 128 {
            return Err(GeneratorError::TooLong(total));
        }
        Ok(Self { groups })
    }

    /// The usual OTP: six decimal digits.
    pub fn numeric(digits: usize) -> Self {
        Self {
            groups: vec![("0123456789".chars().collect(), digits)],
        }
    }

    pub fn generate(&self, random: &dyn Random) -> Secret {
        let mut out = String::new();
        for (chars, count) in &self.groups {
            for _ in 0..*count {
                out.push(chars[uniform_index(random, chars.len())]);
            }
        }
        Secret::new(out)
    }
}

/// A uniformly random index below `n` (1..=256) from random bytes: reject the bytes that would
/// make some indexes likelier than others.
fn uniform_index(random: &dyn Random, n: usize) -> usize {
    let limit = 256 - (256 % n);
    loop {
        let mut b = [0u8; 1];
        random.fill(&mut b);
        let v = usize::from(b[0]);
        if v < limit {
            return v % n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SeqRandom;

    fn sets() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("numeric".to_owned(), "0123456789".to_owned()),
            ("alpha".to_owned(), "abcdefghijklmnopqrstuvwxyz".to_owned()),
        ])
    }

    #[test]
    fn ping_style_formats_produce_the_right_shape() {
        let g = PasswordGenerator::new(&sets(), "alpha:3,numeric:2,alpha:3").unwrap();
        let r = SeqRandom::new();
        for _ in 0..50 {
            let p = g.generate(&r);
            let c: Vec<char> = p.expose().chars().collect();
            assert_eq!(c.len(), 8);
            assert!(c[..3].iter().all(char::is_ascii_lowercase));
            assert!(c[3..5].iter().all(char::is_ascii_digit));
            assert!(c[5..].iter().all(char::is_ascii_lowercase));
        }
    }

    #[test]
    fn bad_formats_are_named() {
        assert_eq!(
            PasswordGenerator::new(&sets(), "").err(),
            Some(GeneratorError::EmptyFormat)
        );
        assert_eq!(
            PasswordGenerator::new(&sets(), "numeric6").err(),
            Some(GeneratorError::BadGroup("numeric6".into()))
        );
        assert_eq!(
            PasswordGenerator::new(&sets(), "hex:6").err(),
            Some(GeneratorError::UnknownSet("hex:6".into()))
        );
        assert_eq!(
            PasswordGenerator::new(&sets(), "numeric:0").err(),
            Some(GeneratorError::BadCount("numeric:0".into()))
        );
        assert_eq!(
            PasswordGenerator::new(&sets(), "numeric:x").err(),
            Some(GeneratorError::BadCount("numeric:x".into()))
        );
        let dup = BTreeMap::from([("d".to_owned(), "00".to_owned())]);
        assert!(matches!(
            PasswordGenerator::new(&dup, "d:1"),
            Err(GeneratorError::RepeatedCharacter(_, '0'))
        ));
    }

    #[test]
    fn digits_are_uniform_enough() {
        // 10 does not divide 256: without rejection, 0..=5 would come up more often.
        let g = PasswordGenerator::numeric(1);
        let r = SeqRandom::new();
        let mut counts = [0u32; 10];
        for _ in 0..2500 {
            let d = g.generate(&r).expose().parse::<usize>().unwrap();
            counts[d] += 1;
        }
        assert!(counts.iter().all(|&c| c == 250), "{counts:?}");
    }
}
