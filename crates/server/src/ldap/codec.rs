//! Framing of the LDAP front: `ldap3_proto`'s codec behind a check of each message's ID, with
//! what went wrong told apart (the stream failed, the message is malformed or too large, the
//! message ID is out of range), so the connection knows whether anybody is left to tell.

use std::io;

use ldap3_proto::LdapCodec;
use ldap3_proto::proto::LdapMsg;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// Why no message could be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed (reset, broken pipe, TLS): nobody left to tell.
    #[error("reading the connection failed: {0}")]
    Io(#[from] io::Error),
    /// Not an LDAP message (malformed BER), or larger than allowed.
    #[error("malformed or oversized LDAP message: {0}")]
    Malformed(io::Error),
    /// RFC 4511 §4.1.1.1: a request's messageID is 1..maxInt (0 is reserved for unsolicited
    /// notifications).
    #[error("LDAP message ID outside 1..2147483647")]
    MessageId,
}

/// `ldap3_proto`'s codec, which reads the messageID as an unsigned number and truncates it to
/// 32 bits (−5 becomes 251, 2^32+1 becomes 1): the ID is checked here, from the raw bytes,
/// before the message is decoded.
pub struct Codec {
    inner: LdapCodec,
    max_message_bytes: usize,
}

impl Codec {
    pub fn new(max_message_bytes: usize) -> Self {
        Codec {
            inner: LdapCodec::new(Some(max_message_bytes), None),
            max_message_bytes,
        }
    }
}

impl Decoder for Codec {
    type Item = LdapMsg;
    type Error = FrameError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LdapMsg>, FrameError> {
        // A message announcing more than the limit is refused as soon as its length has
        // arrived, not after the limit's worth of bytes (or an idle timeout) has gone by.
        if let Some(total) = declared_size(buf)
            && total > self.max_message_bytes
        {
            return Err(FrameError::Malformed(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a message of {total} bytes is larger than the {} allowed",
                    self.max_message_bytes
                ),
            )));
        }
        if message_id(buf).is_some_and(|id| !(1..=i128::from(i32::MAX)).contains(&id)) {
            return Err(FrameError::MessageId);
        }
        self.inner.decode(buf).map_err(FrameError::Malformed)
    }
}

impl Encoder<LdapMsg> for Codec {
    type Error = io::Error;

    fn encode(&mut self, msg: LdapMsg, buf: &mut BytesMut) -> io::Result<()> {
        self.inner.encode(msg, buf)
    }
}

/// The messageID of the LDAPMessage at the front of `buf`, as a signed BER INTEGER (X.690
/// §8.3), once its bytes have arrived. `None` when they have not, or when the message does not
/// start as an LDAPMessage should: the full decoder then waits or refuses it. An ID longer than
/// 16 bytes comes back as 0, out of range like any other bad ID.
fn message_id(buf: &[u8]) -> Option<i128> {
    // LDAPMessage ::= SEQUENCE { messageID INTEGER, ... } (RFC 4511 §4.1.1).
    let (&tag, rest) = buf.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (_, rest) = length(rest)?;
    let (&tag, rest) = rest.split_first()?;
    if tag != 0x02 {
        return None;
    }
    let (len, rest) = length(rest)?;
    let content = rest.get(..len)?;
    if content.is_empty() || content.len() > 16 {
        return Some(0);
    }
    // Two's complement, big-endian: start from the sign of the first byte.
    let sign = if content[0] & 0x80 != 0 { -1i128 } else { 0 };
    Some(
        content
            .iter()
            .fold(sign, |acc, b| (acc << 8) | i128::from(*b)),
    )
}

/// The whole size (tag, length and content) the LDAPMessage at the front of `buf` announces,
/// once its length has arrived.
fn declared_size(buf: &[u8]) -> Option<usize> {
    let (&tag, rest) = buf.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (len, after) = length(rest)?;
    Some((buf.len() - after.len()).saturating_add(len))
}

/// A definite BER length (X.690 §8.1.3) and what follows it; `None` when incomplete or not a
/// length this front accepts (the full decoder then says so).
fn length(buf: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = buf.split_first()?;
    match first {
        0x00..=0x7f => Some((usize::from(first), rest)),
        // Up to eight length bytes: more than four only ever announce something too large,
        // which the caller refuses at once instead of waiting for it.
        0x81..=0x88 => {
            let n = usize::from(first & 0x7f);
            let bytes = rest.get(..n)?;
            let len = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            Some((usize::try_from(len).unwrap_or(usize::MAX), &rest[n..]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(bytes: &[u8]) -> Option<i128> {
        message_id(bytes)
    }

    #[test]
    fn an_oversized_message_is_refused_as_soon_as_its_length_arrives() {
        let mut codec = Codec::new(64 * 1024);
        let mut buf = BytesMut::from(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::Malformed(_))
        ));
        // At the limit, the codec waits for the rest.
        let mut buf = BytesMut::from(&[0x30, 0x83, 0x00, 0xff, 0xfb][..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        assert_eq!(
            declared_size(&[0x30, 0x83, 0x00, 0xff, 0xfb]),
            Some(64 * 1024)
        );
        assert_eq!(declared_size(&[0x30, 0x84, 0x00]), None);
        for header in [
            &[0x30, 0x85, 0x01, 0, 0, 0, 0][..],
            &[0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        ] {
            let mut buf = BytesMut::from(header);
            assert!(matches!(
                codec.decode(&mut buf),
                Err(FrameError::Malformed(_))
            ));
        }
    }

    #[test]
    fn message_ids_are_signed_ber_integers() {
        assert_eq!(id(&[0x30, 0x05, 0x02, 0x01, 0x07, 0x42, 0x00]), Some(7));
        assert_eq!(id(&[0x30, 0x05, 0x02, 0x01, 0xfb]), Some(-5));
        assert_eq!(id(&[0x30, 0x05, 0x02, 0x02, 0x00, 0xfb]), Some(251));
        assert_eq!(
            id(&[0x30, 0x84, 0, 0, 0, 9, 0x02, 0x04, 0x7f, 0xff, 0xff, 0xff]),
            Some(i128::from(i32::MAX))
        );
        assert_eq!(
            id(&[0x30, 0x09, 0x02, 0x05, 0x00, 0x80, 0x00, 0x00, 0x00]),
            Some(1 << 31)
        );
        // Not all there yet, or not an LDAPMessage: the decoder decides.
        assert_eq!(id(&[0x30, 0x05, 0x02, 0x02, 0x00]), None);
        assert_eq!(id(&[0x30]), None);
        assert_eq!(id(&[0xff, 0x01, 0x00, 0x30]), None);
        // An empty INTEGER is no ID.
        assert_eq!(id(&[0x30, 0x02, 0x02, 0x00]), Some(0));
    }

    #[test]
    fn the_codec_refuses_ids_outside_the_range() {
        let mut codec = Codec::new(1024);
        for bad in [
            &[0x30, 0x05, 0x02, 0x01, 0xfb, 0x42, 0x00][..],
            &[0x30, 0x05, 0x02, 0x01, 0x00, 0x42, 0x00],
            &[
                0x30, 0x09, 0x02, 0x05, 0x01, 0x00, 0x00, 0x00, 0x01, 0x42, 0x00,
            ],
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(matches!(codec.decode(&mut buf), Err(FrameError::MessageId)));
        }
        // An unbind with ID 1 decodes.
        let mut buf = BytesMut::from(&[0x30, 0x05, 0x02, 0x01, 0x01, 0x42, 0x00][..]);
        assert!(matches!(codec.decode(&mut buf), Ok(Some(m)) if m.msgid == 1));
    }
}
