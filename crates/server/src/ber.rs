//! Just enough BER (X.690) for the Ping extended-operation values and SASL credentials
//! (spec §3–§5): definite lengths only, single-byte tags (every tag in these payloads is below
//! 31), and nothing that can read past its input. The LDAP envelope itself is `ldap3_proto`'s.
//! Shared by the LDAP front (the Ping values) and the LDAP directory adapter (the ppolicy
//! response control).

use std::fmt;

/// Universal SEQUENCE.
pub const SEQUENCE: u8 = 0x30;
/// Universal OCTET STRING.
pub const OCTET_STRING: u8 = 0x04;
/// Universal BOOLEAN.
pub const BOOLEAN: u8 = 0x01;

/// Context-specific primitive tag `[n]`.
pub const fn context(n: u8) -> u8 {
    0x80 | n
}

/// Context-specific constructed tag `[n]`.
pub const fn context_constructed(n: u8) -> u8 {
    0xA0 | n
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BerError {
    Truncated,
    IndefiniteLength,
    LengthTooLong,
    HighTagNumber,
    TrailingBytes,
    Unexpected { wanted: u8, found: u8 },
}

impl fmt::Display for BerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BerError::Truncated => f.write_str("truncated BER element"),
            BerError::IndefiniteLength => f.write_str("indefinite BER lengths are not allowed"),
            BerError::LengthTooLong => f.write_str("BER length too long"),
            BerError::HighTagNumber => f.write_str("multi-byte BER tags are not used here"),
            BerError::TrailingBytes => f.write_str("bytes after the end of the element"),
            BerError::Unexpected { wanted, found } => {
                write!(f, "expected tag 0x{wanted:02x}, found 0x{found:02x}")
            }
        }
    }
}

/// One element: its tag byte and its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
}

/// Reads one element from the front of `input`; returns it and what follows.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), BerError> {
    let (&tag, rest) = input.split_first().ok_or(BerError::Truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(BerError::HighTagNumber);
    }
    let (&first, rest) = rest.split_first().ok_or(BerError::Truncated)?;
    let (len, rest) = match first {
        0x00..=0x7f => (usize::from(first), rest),
        0x80 => return Err(BerError::IndefiniteLength),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if rest.len() < n {
                return Err(BerError::Truncated);
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        }
        _ => return Err(BerError::LengthTooLong),
    };
    if rest.len() < len {
        return Err(BerError::Truncated);
    }
    Ok((
        Tlv {
            tag,
            value: &rest[..len],
        },
        &rest[len..],
    ))
}

/// Reads exactly one element that fills `input`.
pub fn read_only(input: &[u8]) -> Result<Tlv<'_>, BerError> {
    let (tlv, rest) = read(input)?;
    if !rest.is_empty() {
        return Err(BerError::TrailingBytes);
    }
    Ok(tlv)
}

/// The elements inside a constructed value, in order.
pub fn children(value: &[u8]) -> Result<Vec<Tlv<'_>>, BerError> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let (tlv, r) = read(rest)?;
        out.push(tlv);
        rest = r;
    }
    Ok(out)
}

/// Reads `input` as one SEQUENCE and returns its elements.
pub fn sequence(input: &[u8]) -> Result<Vec<Tlv<'_>>, BerError> {
    let tlv = read_only(input)?;
    if tlv.tag != SEQUENCE {
        return Err(BerError::Unexpected {
            wanted: SEQUENCE,
            found: tlv.tag,
        });
    }
    children(tlv.value)
}

/// Encodes one element.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Encodes a constructed element from already encoded children.
pub fn constructed(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let enc = tlv(OCTET_STRING, &content);
            let (t, rest) = read(&enc).unwrap();
            assert!(rest.is_empty());
            assert_eq!((t.tag, t.value.len()), (OCTET_STRING, len));
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(read(&[]), Err(BerError::Truncated));
        assert_eq!(read(&[0x04]), Err(BerError::Truncated));
        assert_eq!(read(&[0x04, 0x05, 1, 2]), Err(BerError::Truncated));
        assert_eq!(read(&[0x30, 0x80, 0, 0]), Err(BerError::IndefiniteLength));
        assert_eq!(
            read(&[0x04, 0x85, 1, 1, 1, 1, 1]),
            Err(BerError::LengthTooLong)
        );
        assert_eq!(
            read(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(BerError::Truncated)
        );
        assert_eq!(read(&[0x1f, 0x01, 0x00]), Err(BerError::HighTagNumber));
        assert_eq!(read_only(&[0x04, 0x00, 0x00]), Err(BerError::TrailingBytes));
        assert!(matches!(
            sequence(&[0x04, 0x00]),
            Err(BerError::Unexpected { .. })
        ));
    }
}
