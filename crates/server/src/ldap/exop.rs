//! The values of the Ping extended operations and of the UNBOUNDID-DELIVERED-OTP SASL
//! credentials (spec §3, §4, §5): decoders that accept elements in any order (the UnboundID SDK
//! sends `[3]` last, §3.2) and refuse what the SDK's own decoders refuse, and encoders whose
//! output matches the SDK's byte for byte (§6).

use std::fmt;

use countersign_core::Secret;
use countersign_core::mechanism::{MechanismChoice, MessageTexts};
use countersign_core::otp::MechanismSupport;

use crate::ber::{self, BOOLEAN, OCTET_STRING, SEQUENCE, Tlv, context, context_constructed};

pub const DELIVER_OTP_REQUEST: &str = "1.3.6.1.4.1.30221.2.6.24";
pub const DELIVER_OTP_RESPONSE: &str = "1.3.6.1.4.1.30221.2.6.25";
pub const GET_SUPPORTED_REQUEST: &str = "1.3.6.1.4.1.30221.2.6.47";
pub const GET_SUPPORTED_RESPONSE: &str = "1.3.6.1.4.1.30221.2.6.48";
pub const WHO_AM_I: &str = "1.3.6.1.4.1.4203.1.11.3";
pub const START_TLS: &str = "1.3.6.1.4.1.1466.20037";
/// RFC 4511 §4.4.1.
pub const NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";
pub const SASL_DELIVERED_OTP: &str = "UNBOUNDID-DELIVERED-OTP";

/// Unknown tags are refused, as the SDK's decoders refuse them (spec §2, [UNCONFIRMED] for
/// PingDirectory itself). Flip this to accept them and ignore their contents.
const REJECT_UNKNOWN_TAGS: bool = true;

/// Why a value could not be decoded; the text becomes the LDAP diagnostic message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ber::BerError> for DecodeError {
    fn from(e: ber::BerError) -> Self {
        DecodeError(e.to_string())
    }
}

fn err<T>(what: &str, msg: impl fmt::Display) -> Result<T, DecodeError> {
    Err(DecodeError(format!("{what}: {msg}")))
}

fn utf8(what: &str, field: &str, bytes: &[u8]) -> Result<String, DecodeError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => err(what, format!("{field} is not UTF-8")),
    }
}

/// Puts `value` in `slot`, refusing a second occurrence of the same element.
fn once<T>(what: &str, field: &str, slot: &mut Option<T>, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return err(what, format!("{field} appears twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn unknown_tag(what: &str, tag: u8) -> Result<(), DecodeError> {
    if REJECT_UNKNOWN_TAGS {
        err(what, format!("unknown element tag 0x{tag:02x}"))
    } else {
        Ok(())
    }
}

/// A decoded Deliver One-Time Password request (spec §3.1).
#[derive(Debug, Clone, Default)]
pub struct DeliverOtpRequest {
    pub authentication_id: String,
    pub static_password: Option<Secret>,
    /// `[2]` or `[3]`; `None` when the request has neither.
    pub mechanisms: Option<Vec<MechanismChoice>>,
    pub texts: MessageTexts,
}

pub fn decode_deliver_otp(value: &[u8]) -> Result<DeliverOtpRequest, DecodeError> {
    const WHAT: &str = "Deliver OTP request";
    let mut auth_id = None;
    let mut password = None;
    let mut names: Option<Vec<MechanismChoice>> = None;
    let mut pairs: Option<Vec<MechanismChoice>> = None;
    let (mut subject, mut full_before, mut full_after, mut compact_before, mut compact_after) =
        (None, None, None, None, None);
    for Tlv { tag, value } in ber::sequence(value)? {
        match tag {
            t if t == context(0) => once(
                WHAT,
                "authenticationID [0]",
                &mut auth_id,
                utf8(WHAT, "authenticationID", value)?,
            )?,
            t if t == context(1) => once(
                WHAT,
                "staticPassword [1]",
                &mut password,
                Secret::new(utf8(WHAT, "staticPassword", value)?),
            )?,
            t if t == context_constructed(2) => once(
                WHAT,
                "preferredMechNames [2]",
                &mut names,
                mech_names(value)?,
            )?,
            t if t == context_constructed(3) => once(
                WHAT,
                "preferredMechNamesAndIDs [3]",
                &mut pairs,
                mech_names_and_ids(value)?,
            )?,
            t if t == context(4) => once(
                WHAT,
                "messageSubject [4]",
                &mut subject,
                utf8(WHAT, "messageSubject", value)?,
            )?,
            t if t == context(5) => once(
                WHAT,
                "fullTextBeforeOTP [5]",
                &mut full_before,
                utf8(WHAT, "fullTextBeforeOTP", value)?,
            )?,
            t if t == context(6) => once(
                WHAT,
                "fullTextAfterOTP [6]",
                &mut full_after,
                utf8(WHAT, "fullTextAfterOTP", value)?,
            )?,
            t if t == context(7) => once(
                WHAT,
                "compactTextBeforeOTP [7]",
                &mut compact_before,
                utf8(WHAT, "compactTextBeforeOTP", value)?,
            )?,
            t if t == context(8) => once(
                WHAT,
                "compactTextAfterOTP [8]",
                &mut compact_after,
                utf8(WHAT, "compactTextAfterOTP", value)?,
            )?,
            other => unknown_tag(WHAT, other)?,
        }
    }
    let Some(authentication_id) = auth_id else {
        return err(WHAT, "authenticationID [0] is missing");
    };
    if names.is_some() && pairs.is_some() {
        return err(
            WHAT,
            "preferredMechNames [2] and preferredMechNamesAndIDs [3] are both present",
        );
    }
    Ok(DeliverOtpRequest {
        authentication_id,
        static_password: password,
        mechanisms: names.or(pairs),
        texts: MessageTexts {
            subject,
            full_before,
            full_after,
            compact_before,
            compact_after,
        },
    })
}

/// `preferredMechNames [2]`: a SEQUENCE OF OCTET STRING.
fn mech_names(value: &[u8]) -> Result<Vec<MechanismChoice>, DecodeError> {
    const WHAT: &str = "Deliver OTP request";
    let mut list = Vec::new();
    for item in ber::children(value)? {
        if item.tag != OCTET_STRING {
            return err(
                WHAT,
                "preferredMechNames [2] holds something other than OCTET STRINGs",
            );
        }
        list.push(MechanismChoice {
            name: utf8(WHAT, "mechanism name", item.value)?,
            recipient: None,
        });
    }
    Ok(list)
}

/// `preferredMechNamesAndIDs [3]`: a SEQUENCE OF SEQUENCE { name, recipient ID OPTIONAL }.
fn mech_names_and_ids(value: &[u8]) -> Result<Vec<MechanismChoice>, DecodeError> {
    const WHAT: &str = "Deliver OTP request";
    let mut list = Vec::new();
    for item in ber::children(value)? {
        if item.tag != SEQUENCE {
            return err(
                WHAT,
                "preferredMechNamesAndIDs [3] holds something other than SEQUENCEs",
            );
        }
        // Name, then an optional recipient ID; the SDK ignores anything further.
        let parts = ber::children(item.value)?;
        let Some(name) = parts.first() else {
            return err(
                WHAT,
                "a preferredMechNamesAndIDs [3] item has no mechanism name",
            );
        };
        if parts.iter().take(2).any(|p| p.tag != OCTET_STRING) {
            return err(
                WHAT,
                "a preferredMechNamesAndIDs [3] item holds something other than OCTET STRINGs",
            );
        }
        let recipient = match parts.get(1) {
            Some(r) => Some(utf8(WHAT, "recipient ID", r.value)?),
            None => None,
        };
        list.push(MechanismChoice {
            name: utf8(WHAT, "mechanism name", name.value)?,
            recipient,
        });
    }
    Ok(list)
}

/// The request value, in the SDK's own element order (`[0] [1] [4]..[8] [3]`, spec §3.2) when
/// recipients are given, `[0] [1] [2]` otherwise. Used by tests, the fuzz seeds and the bench.
pub fn encode_deliver_otp(req: &DeliverOtpRequest) -> Vec<u8> {
    let mut parts = vec![ber::tlv(context(0), req.authentication_id.as_bytes())];
    if let Some(pw) = &req.static_password {
        parts.push(ber::tlv(context(1), pw.expose().as_bytes()));
    }
    let with_ids = req
        .mechanisms
        .as_ref()
        .is_some_and(|m| m.iter().any(|c| c.recipient.is_some()));
    if let (Some(list), false) = (&req.mechanisms, with_ids) {
        let names: Vec<Vec<u8>> = list
            .iter()
            .map(|c| ber::tlv(OCTET_STRING, c.name.as_bytes()))
            .collect();
        parts.push(ber::constructed(context_constructed(2), &names));
    }
    let t = &req.texts;
    for (n, text) in [
        (4, &t.subject),
        (5, &t.full_before),
        (6, &t.full_after),
        (7, &t.compact_before),
        (8, &t.compact_after),
    ] {
        if let Some(text) = text {
            parts.push(ber::tlv(context(n), text.as_bytes()));
        }
    }
    if let (Some(list), true) = (&req.mechanisms, with_ids) {
        let items: Vec<Vec<u8>> = list
            .iter()
            .map(|c| {
                let mut item = vec![ber::tlv(OCTET_STRING, c.name.as_bytes())];
                if let Some(r) = &c.recipient {
                    item.push(ber::tlv(OCTET_STRING, r.as_bytes()));
                }
                ber::constructed(SEQUENCE, &item)
            })
            .collect();
        parts.push(ber::constructed(context_constructed(3), &items));
    }
    ber::constructed(SEQUENCE, &parts)
}

/// The success value (spec §3.3): mechanism, recipient DN, recipient ID, optional message.
pub fn encode_deliver_otp_result(
    mechanism: &str,
    recipient_dn: &str,
    recipient_id: Option<&str>,
    message: Option<&str>,
) -> Vec<u8> {
    let mut parts = vec![
        ber::tlv(context(0), mechanism.as_bytes()),
        ber::tlv(context(1), recipient_dn.as_bytes()),
    ];
    if let Some(id) = recipient_id {
        parts.push(ber::tlv(context(2), id.as_bytes()));
    }
    if let Some(m) = message {
        parts.push(ber::tlv(context(3), m.as_bytes()));
    }
    ber::constructed(SEQUENCE, &parts)
}

/// The user DN of a Get Supported OTP Delivery Mechanisms request (spec §4): the first element,
/// `[0]` (a plain OCTET STRING is tolerated, as the SDK's decoder does not check the tag).
pub fn decode_get_supported(value: &[u8]) -> Result<String, DecodeError> {
    const WHAT: &str = "Get Supported OTP Delivery Mechanisms request";
    let elements = ber::sequence(value)?;
    let Some(first) = elements.first() else {
        return err(WHAT, "userDN [0] is missing");
    };
    if first.tag != context(0) && first.tag != OCTET_STRING {
        return err(
            WHAT,
            format!("userDN has tag 0x{:02x}, expected 0x80", first.tag),
        );
    }
    for extra in &elements[1..] {
        unknown_tag(WHAT, extra.tag)?;
    }
    utf8(WHAT, "userDN", first.value)
}

pub fn encode_get_supported(user_dn: &str) -> Vec<u8> {
    ber::constructed(SEQUENCE, &[ber::tlv(context(0), user_dn.as_bytes())])
}

/// The success value (spec §4): one item per mechanism and recipient; `30 00` when empty.
pub fn encode_get_supported_result(items: &[MechanismSupport]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = items
        .iter()
        .map(|m| {
            let mut item = vec![
                ber::tlv(context(0), m.mechanism.as_bytes()),
                ber::tlv(context(1), &[if m.supported { 0xff } else { 0x00 }]),
            ];
            if let Some(r) = &m.recipient {
                item.push(ber::tlv(context(2), r.as_bytes()));
            }
            ber::constructed(SEQUENCE, &item)
        })
        .collect();
    ber::constructed(SEQUENCE, &encoded)
}

/// Decodes a Get Supported result (for tests and clients): name, is-supported (any non-zero
/// byte is true, spec §4 "be lenient"), recipient.
pub fn decode_get_supported_result(value: &[u8]) -> Result<Vec<MechanismSupport>, DecodeError> {
    const WHAT: &str = "Get Supported OTP Delivery Mechanisms result";
    let mut out = Vec::new();
    for item in ber::sequence(value)? {
        let parts = ber::children(item.value)?;
        let Some(name) = parts.first() else {
            return err(WHAT, "an item has no mechanism name");
        };
        let mut supported = false;
        let mut recipient = None;
        for p in &parts[1..] {
            match p.tag {
                t if t == context(1) || t == BOOLEAN => supported = p.value.iter().any(|b| *b != 0),
                t if t == context(2) => recipient = Some(utf8(WHAT, "recipientID", p.value)?),
                other => unknown_tag(WHAT, other)?,
            }
        }
        out.push(MechanismSupport {
            mechanism: utf8(WHAT, "mechanism", name.value)?,
            supported,
            recipient,
        });
    }
    Ok(out)
}

/// UNBOUNDID-DELIVERED-OTP SASL credentials (spec §5).
#[derive(Debug, Clone)]
pub struct DeliveredOtpCredentials {
    pub authentication_id: String,
    pub authorization_id: Option<String>,
    pub otp: Secret,
}

pub fn decode_sasl_credentials(value: &[u8]) -> Result<DeliveredOtpCredentials, DecodeError> {
    const WHAT: &str = "UNBOUNDID-DELIVERED-OTP credentials";
    let (mut authn, mut authz, mut otp) = (None, None, None);
    for Tlv { tag, value } in ber::sequence(value)? {
        match tag {
            t if t == context(0) => once(
                WHAT,
                "authenticationID [0]",
                &mut authn,
                utf8(WHAT, "authenticationID", value)?,
            )?,
            t if t == context(1) => once(
                WHAT,
                "authorizationID [1]",
                &mut authz,
                utf8(WHAT, "authorizationID", value)?,
            )?,
            t if t == context(2) => once(
                WHAT,
                "oneTimePassword [2]",
                &mut otp,
                Secret::new(utf8(WHAT, "oneTimePassword", value)?),
            )?,
            other => unknown_tag(WHAT, other)?,
        }
    }
    match (authn, otp) {
        (Some(authentication_id), Some(otp)) => Ok(DeliveredOtpCredentials {
            authentication_id,
            authorization_id: authz,
            otp,
        }),
        (None, _) => err(WHAT, "authenticationID [0] is missing"),
        (_, None) => err(WHAT, "oneTimePassword [2] is missing"),
    }
}

pub fn encode_sasl_credentials(creds: &DeliveredOtpCredentials) -> Vec<u8> {
    let mut parts = vec![ber::tlv(context(0), creds.authentication_id.as_bytes())];
    if let Some(z) = &creds.authorization_id {
        parts.push(ber::tlv(context(1), z.as_bytes()));
    }
    parts.push(ber::tlv(context(2), creds.otp.expose().as_bytes()));
    ber::constructed(SEQUENCE, &parts)
}

#[cfg(test)]
mod tests {
    //! The hex vectors of spec §6, produced by the UnboundID SDK.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        countersign_core::crypto::from_hex(s).unwrap()
    }

    fn names(r: &DeliverOtpRequest) -> Vec<(String, Option<String>)> {
        r.mechanisms
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.recipient))
            .collect()
    }

    const V1: &str =
        "3025800b753a746573742e75736572810870617373776f7264a20c0403534d530405456d61696c";
    const V2: &str = "3040800b753a746573742e75736572810870617373776f7264a327301e0405456d61696c0415746573742e75736572406578616d706c652e636f6d30050403534d53";
    const V3: &str = "3065802c646e3a7569643d746573742e757365722c6f753d50656f706c652c64633d6578616d706c652c64633d636f6d810870617373776f72648409596f757220636f6465a320301e0405456d61696c0415746573742e75736572406578616d706c652e636f6d";
    const V4: &str = "3036800b753a746573742e75736572810870617373776f726484045375626a85024642860246418702434288024341a30730050403534d53";
    const V5: &str = "300d800b753a746573742e75736572";
    const V6: &str = "3015800b753a746573742e757365728206313233343536";
    const V7: &str = "301e800b753a746573742e757365728107753a6f746865728206313233343536";
    const V8: &str = "302b80297569643d746573742e757365722c6f753d50656f706c652c64633d6578616d706c652c64633d636f6d";
    const V9: &str = "302d30218005456d61696c8101ff8215746573742e75736572406578616d706c652e636f6d30088003534d53810100";
    const V10: &str = "30498005456d61696c81297569643d746573742e757365722c6f753d50656f706c652c64633d6578616d706c652c64633d636f6d8215746573742e75736572406578616d706c652e636f6d";
    const DN: &str = "uid=test.user,ou=People,dc=example,dc=com";

    #[test]
    fn v1_names_form() {
        let r = decode_deliver_otp(&hex(V1)).unwrap();
        assert_eq!(r.authentication_id, "u:test.user");
        assert_eq!(r.static_password.as_ref().unwrap().expose(), "password");
        assert_eq!(names(&r), [("SMS".into(), None), ("Email".into(), None)]);
        assert_eq!(encode_deliver_otp(&r), hex(V1));
    }

    #[test]
    fn v2_names_and_ids_form() {
        let r = decode_deliver_otp(&hex(V2)).unwrap();
        assert_eq!(
            names(&r),
            [
                ("Email".into(), Some("test.user@example.com".into())),
                ("SMS".into(), None)
            ]
        );
        assert_eq!(encode_deliver_otp(&r), hex(V2));
    }

    #[test]
    fn v3_subject_before_the_list_in_sdk_order() {
        let r = decode_deliver_otp(&hex(V3)).unwrap();
        assert_eq!(r.authentication_id, format!("dn:{DN}"));
        assert_eq!(r.texts.subject.as_deref(), Some("Your code"));
        assert_eq!(
            names(&r),
            [("Email".into(), Some("test.user@example.com".into()))]
        );
        assert_eq!(encode_deliver_otp(&r), hex(V3));
    }

    #[test]
    fn v4_all_texts() {
        let r = decode_deliver_otp(&hex(V4)).unwrap();
        let t = &r.texts;
        assert_eq!(
            (
                t.subject.as_deref(),
                t.full_before.as_deref(),
                t.full_after.as_deref(),
                t.compact_before.as_deref(),
                t.compact_after.as_deref()
            ),
            (Some("Subj"), Some("FB"), Some("FA"), Some("CB"), Some("CA"))
        );
        assert_eq!(names(&r), [("SMS".into(), None)]);
    }

    #[test]
    fn v5_step_up_without_password() {
        let r = decode_deliver_otp(&hex(V5)).unwrap();
        assert!(r.static_password.is_none() && r.mechanisms.is_none());
        assert_eq!(encode_deliver_otp(&r), hex(V5));
    }

    #[test]
    fn v6_v7_sasl_credentials() {
        let c = decode_sasl_credentials(&hex(V6)).unwrap();
        assert_eq!(
            (
                c.authentication_id.as_str(),
                c.authorization_id.as_deref(),
                c.otp.expose()
            ),
            ("u:test.user", None, "123456")
        );
        assert_eq!(encode_sasl_credentials(&c), hex(V6));
        let c = decode_sasl_credentials(&hex(V7)).unwrap();
        assert_eq!(c.authorization_id.as_deref(), Some("u:other"));
        assert_eq!(encode_sasl_credentials(&c), hex(V7));
    }

    #[test]
    fn v8_get_supported_request() {
        assert_eq!(decode_get_supported(&hex(V8)).unwrap(), DN);
        assert_eq!(encode_get_supported(DN), hex(V8));
    }

    #[test]
    fn v9_get_supported_result() {
        let items = vec![
            MechanismSupport {
                mechanism: "Email".into(),
                supported: true,
                recipient: Some("test.user@example.com".into()),
            },
            MechanismSupport {
                mechanism: "SMS".into(),
                supported: false,
                recipient: None,
            },
        ];
        assert_eq!(encode_get_supported_result(&items), hex(V9));
        assert_eq!(decode_get_supported_result(&hex(V9)).unwrap(), items);
        assert_eq!(encode_get_supported_result(&[]), [0x30, 0x00]);
    }

    #[test]
    fn v10_deliver_otp_result() {
        assert_eq!(
            encode_deliver_otp_result("Email", DN, Some("test.user@example.com"), None),
            hex(V10)
        );
    }

    #[test]
    fn malformed_values_are_named() {
        let cases: [(&str, &str); 9] = [
            ("", "truncated BER element"),
            ("3005800175", "truncated BER element"),
            ("30088106706173737764", "authenticationID [0] is missing"),
            ("3006800175800176", "authenticationID [0] appears twice"),
            ("3006800175890100", "unknown element tag 0x89"),
            ("3003800175ff", "bytes after the end of the element"),
            ("300880017580017530", "truncated BER element"),
            (
                "3007800175a2023000",
                "holds something other than OCTET STRINGs",
            ),
            ("3004800175a3", "truncated"),
        ];
        for (h, expect) in cases {
            let e = decode_deliver_otp(&hex(h)).unwrap_err();
            assert!(e.0.contains(expect), "{h}: {e}");
        }
        let both = "3010800175a2050403534d53a30430020400";
        assert!(
            decode_deliver_otp(&hex(both))
                .unwrap_err()
                .0
                .contains("both present")
        );
        let bad_utf8 = "30038001ff";
        assert!(
            decode_deliver_otp(&hex(bad_utf8))
                .unwrap_err()
                .0
                .contains("not UTF-8")
        );

        assert!(
            decode_sasl_credentials(&hex("3003800175"))
                .unwrap_err()
                .0
                .contains("oneTimePassword [2] is missing")
        );
        assert!(
            decode_sasl_credentials(&hex("3003820131"))
                .unwrap_err()
                .0
                .contains("authenticationID [0] is missing")
        );
        assert!(
            decode_get_supported(&hex("3000"))
                .unwrap_err()
                .0
                .contains("userDN [0] is missing")
        );
        assert!(
            decode_get_supported(&hex("3003810178"))
                .unwrap_err()
                .0
                .contains("expected 0x80")
        );
    }
}
