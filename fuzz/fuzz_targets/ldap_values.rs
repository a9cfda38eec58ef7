//! Fuzzes what the LDAP handler decodes from clients: the Deliver OTP and Get Supported OTP
//! Delivery Mechanisms request values and the UNBOUNDID-DELIVERED-OTP SASL credentials. None
//! may panic, and whatever decodes must re-encode to something that decodes to the same.

#![no_main]

use countersign::ldap::exop;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = exop::decode_deliver_otp(data) {
        let again = exop::decode_deliver_otp(&exop::encode_deliver_otp(&req)).expect("re-encoded request decodes");
        assert_eq!(again.authentication_id, req.authentication_id);
        assert_eq!(again.static_password, req.static_password);
        assert_eq!(again.mechanisms, req.mechanisms);
        assert_eq!(again.texts, req.texts);
    }
    if let Ok(dn) = exop::decode_get_supported(data) {
        assert_eq!(exop::decode_get_supported(&exop::encode_get_supported(&dn)).ok(), Some(dn));
    }
    if let Ok(creds) = exop::decode_sasl_credentials(data) {
        let again = exop::decode_sasl_credentials(&exop::encode_sasl_credentials(&creds)).expect("re-encoded credentials decode");
        assert_eq!(again.authentication_id, creds.authentication_id);
        assert_eq!(again.authorization_id, creds.authorization_id);
        assert_eq!(again.otp, creds.otp);
    }
    let _ = exop::decode_get_supported_result(data);
});
