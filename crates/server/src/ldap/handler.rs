//! LDAP meaning, without sockets: one request and the connection's state in, the responses (and
//! what the listener must do next) out. Every request is answered; the use cases' errors are
//! mapped to result codes here, once (spec §11).

use std::sync::Arc;

use countersign_core::AuthError;
use countersign_core::Secret;
use countersign_core::attempt::{Caller, Front};
use countersign_core::model::UserKey;
use countersign_core::otp::{DeliverRequest, OtpService, RecipientView, VerifyRequest};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapExtendedRequest, LdapExtendedResponse,
    LdapFilter, LdapMsg, LdapOp, LdapPartialAttribute, LdapResult, LdapResultCode,
    LdapSearchRequest, LdapSearchResultEntry, LdapSearchScope,
};

use super::approval::LdapLogin;
use super::exop::{self, DecodeError};
use crate::config::BindNameForms;

/// The user a connection is bound as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundUser {
    pub key: UserKey,
    pub dn: String,
}

/// What the listener knows about the connection a request came on.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub bound: Option<BoundUser>,
    /// LDAPS, or StartTLS done.
    pub secure: bool,
    pub client: Option<String>,
    /// Other operations of this connection still running.
    pub outstanding: usize,
}

/// What the listener does with a handled request.
#[derive(Debug)]
pub enum Outcome {
    Respond(Vec<LdapMsg>),
    /// A bind finished: send the response and make `bound` the connection's identity (`None`
    /// is anonymous, also after a failed bind, RFC 4513 §5.2.1).
    Bind {
        bound: Option<BoundUser>,
        response: LdapMsg,
    },
    /// Send the success response, then start TLS on the connection (RFC 4511 §4.14).
    StartTls(LdapMsg),
    /// Unbind: close without a response.
    Disconnect,
    /// Abandon: nothing to send.
    Ignore,
}

/// Settings of the LDAP front that change answers.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    pub allow_deliver_otp_without_tls: bool,
    pub bind_name_forms: BindNameForms,
    pub reveal_recipients: bool,
    /// Whether StartTLS can be offered (a certificate is configured).
    pub tls_available: bool,
    /// `[deliver_otp] enabled`: when false, Deliver OTP is neither advertised nor served.
    pub deliver_otp_enabled: bool,
    pub naming_contexts: Vec<String>,
}

pub struct LdapHandler {
    otp: Arc<OtpService>,
    settings: LdapSettings,
    root_dse: Vec<(String, Vec<String>)>,
    /// Logins under Approved OTP; without it binds check the first factor alone.
    login: Option<LdapLogin>,
}

pub(super) fn result(code: LdapResultCode, message: impl Into<String>) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.into(),
        referral: Vec::new(),
    }
}

fn success() -> LdapResult {
    result(LdapResultCode::Success, "")
}

fn extended(msgid: i32, res: LdapResult, name: Option<&str>, value: Option<Vec<u8>>) -> LdapMsg {
    LdapMsg::new(
        msgid,
        LdapOp::ExtendedResponse(LdapExtendedResponse {
            res,
            name: name.map(str::to_owned),
            value,
        }),
    )
}

pub(super) fn bind_result(msgid: i32, res: LdapResult) -> LdapMsg {
    bind_response(msgid, res)
}

fn bind_response(msgid: i32, res: LdapResult) -> LdapMsg {
    LdapMsg::new(
        msgid,
        LdapOp::BindResponse(LdapBindResponse {
            res,
            saslcreds: None,
        }),
    )
}

/// RFC 4511 §4.4.1: the unsolicited notice sent before closing a connection the server can no
/// longer read.
pub fn notice_of_disconnection(code: LdapResultCode, message: &str) -> LdapMsg {
    extended(
        0,
        result(code, message),
        Some(exop::NOTICE_OF_DISCONNECTION),
        None,
    )
}

/// Spec §11: the one mapping from use-case errors to LDAP result codes.
fn map_error(e: &AuthError) -> LdapResult {
    use LdapResultCode as C;
    match e {
        AuthError::MalformedIdentity(_) => result(C::ProtocolError, e.to_string()),
        AuthError::InvalidRequest(_) => result(C::UnwillingToPerform, e.to_string()),
        AuthError::InvalidCredentials(_) => result(C::InvalidCredentials, "invalid credentials"),
        AuthError::AuthorizationDenied(_) => result(C::InsufficentAccessRights, e.to_string()),
        AuthError::NotDelivered { .. } => result(C::UnwillingToPerform, e.to_string()),
        AuthError::NoSuchUser => result(C::NoSuchObject, "no such user"),
        // The first factor was right: the user may learn why the login does not go through.
        AuthError::Denied(denial) => result(
            C::InvalidCredentials,
            format!("login denied ({}): {}", denial.code(), denial.as_str()),
        ),
        AuthError::UnknownLogin => result(C::NoSuchObject, "no such login"),
        AuthError::RateLimited { .. } => result(C::Busy, e.to_string()),
        AuthError::Unavailable(_) => result(
            C::Unavailable,
            "a directory or the store cannot be reached; try again later",
        ),
    }
}

fn decode_error(e: &DecodeError) -> LdapResult {
    result(LdapResultCode::ProtocolError, e.to_string())
}

/// A bind's answer: bound as the user, or anonymous after any failure. A malformed identity is
/// a credential failure here (binds answer 49 for every credential problem).
pub(super) fn bind_outcome(id: i32, outcome: Result<countersign_core::User, AuthError>) -> Outcome {
    let (bound, res) = match outcome {
        Ok(user) => (
            Some(BoundUser {
                key: user.key(),
                dn: user.dn.to_string(),
            }),
            success(),
        ),
        Err(AuthError::MalformedIdentity(_)) => (
            None,
            result(LdapResultCode::InvalidCredentials, "invalid credentials"),
        ),
        Err(e) => (None, map_error(&e)),
    };
    Outcome::Bind {
        bound,
        response: bind_response(id, res),
    }
}

/// RFC 4511 §4.1.11: a critical control the server does not recognise fails the operation.
fn critical_control(controls: &[LdapControl]) -> Option<String> {
    controls.iter().find_map(|c| match c {
        LdapControl::Unknown {
            oid,
            criticality: true,
            ..
        } => Some(oid.clone()),
        LdapControl::SyncRequest {
            criticality: true, ..
        } => Some("1.3.6.1.4.1.4203.1.9.1.1".into()),
        LdapControl::ManageDsaIT { criticality: true } => Some("2.16.840.1.113730.3.4.2".into()),
        LdapControl::PasswordPolicyRequest { criticality: true } => {
            Some("1.3.6.1.4.1.42.2.27.8.5.1".into())
        }
        LdapControl::SearchOptions {
            criticality: true, ..
        } => Some("1.2.840.113556.1.4.1340".into()),
        LdapControl::ShowDeleted { criticality: true } => Some("1.2.840.113556.1.4.417".into()),
        LdapControl::SdFlags {
            criticality: true, ..
        } => Some("1.2.840.113556.1.4.801".into()),
        LdapControl::ExtendedDn {
            criticality: true, ..
        } => Some("1.2.840.113556.1.4.529".into()),
        _ => None,
    })
}

impl LdapHandler {
    pub fn new(otp: Arc<OtpService>, settings: LdapSettings) -> Self {
        let mut extensions = Vec::new();
        if settings.deliver_otp_enabled {
            extensions.push(exop::DELIVER_OTP_REQUEST.to_owned());
        }
        extensions.extend([
            exop::GET_SUPPORTED_REQUEST.to_owned(),
            exop::WHO_AM_I.to_owned(),
        ]);
        if settings.tls_available {
            extensions.push(exop::START_TLS.to_owned());
        }
        let root_dse = vec![
            ("objectClass".to_owned(), vec!["top".to_owned()]),
            (
                "namingContexts".to_owned(),
                settings.naming_contexts.clone(),
            ),
            ("supportedLDAPVersion".to_owned(), vec!["3".to_owned()]),
            ("supportedExtension".to_owned(), extensions),
            (
                "supportedSASLMechanisms".to_owned(),
                vec![exop::SASL_DELIVERED_OTP.to_owned()],
            ),
            (
                "ds-supported-otp-delivery-mechanism".to_owned(),
                otp.mechanism_names(),
            ),
            ("vendorName".to_owned(), vec!["countersign".to_owned()]),
            (
                "vendorVersion".to_owned(),
                vec![format!("countersign {}", env!("CARGO_PKG_VERSION"))],
            ),
        ];
        Self {
            otp,
            settings,
            root_dse,
            login: None,
        }
    }

    /// Binds become logins of the front's application (policies, profiles, approvals).
    pub fn with_login(mut self, login: LdapLogin) -> Self {
        self.login = Some(login);
        self
    }

    fn caller(&self, session: &Session) -> Caller {
        Caller {
            front: Front::Ldap,
            client: session.client.clone(),
            bound_as: session.bound.as_ref().map(|b| b.key.clone()),
        }
    }

    pub async fn handle(&self, msg: LdapMsg, session: &Session) -> Outcome {
        let id = msg.msgid;
        // Unbind and abandon have no response to carry a refusal (RFC 4511 §4.3, §4.11).
        let answerable = !matches!(msg.op, LdapOp::UnbindRequest | LdapOp::AbandonRequest(_));
        if let (Some(oid), true) = (critical_control(&msg.ctrl), answerable) {
            let res = result(
                LdapResultCode::UnavailableCriticalExtension,
                format!("critical control {oid} is not supported"),
            );
            return self.refuse(&msg.op, id, res);
        }
        match msg.op {
            LdapOp::BindRequest(req) => self.bind(id, req, session).await,
            LdapOp::UnbindRequest => Outcome::Disconnect,
            LdapOp::AbandonRequest(_) => Outcome::Ignore,
            LdapOp::SearchRequest(req) => Outcome::Respond(self.search(id, &req)),
            LdapOp::ExtendedRequest(req) => self.extended(id, req, session).await,
            other => self.refuse(
                &other,
                id,
                result(
                    LdapResultCode::UnwillingToPerform,
                    "countersign serves binds, the root DSE and its extended operations only",
                ),
            ),
        }
    }

    /// A refusal of `op`: a failed bind also leaves the connection anonymous (RFC 4513 §5.2.1).
    pub fn refuse(&self, op: &LdapOp, id: i32, res: LdapResult) -> Outcome {
        let response = self.refusal_for(op, id, res);
        if matches!(op, LdapOp::BindRequest(_)) {
            Outcome::Bind {
                bound: None,
                response,
            }
        } else {
            Outcome::Respond(vec![response])
        }
    }

    /// The response of the right type for `op`, carrying `res`.
    pub fn refusal_for(&self, op: &LdapOp, id: i32, res: LdapResult) -> LdapMsg {
        let op = match op {
            LdapOp::BindRequest(_) => LdapOp::BindResponse(LdapBindResponse {
                res,
                saslcreds: None,
            }),
            LdapOp::SearchRequest(_) => LdapOp::SearchResultDone(res),
            LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(res),
            LdapOp::AddRequest(_) => LdapOp::AddResponse(res),
            LdapOp::DelRequest(_) => LdapOp::DelResponse(res),
            LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(res),
            LdapOp::CompareRequest(_) => LdapOp::CompareResult(res),
            _ => LdapOp::ExtendedResponse(LdapExtendedResponse {
                res,
                name: None,
                value: None,
            }),
        };
        LdapMsg::new(id, op)
    }

    // ---------------------------------------------------------------------------------------
    // Bind (RFC 4511 §4.2, RFC 4513 §5).

    async fn bind(&self, id: i32, req: LdapBindRequest, session: &Session) -> Outcome {
        let fail = |res: LdapResult| Outcome::Bind {
            bound: None,
            response: bind_response(id, res),
        };
        if req.version != 3 {
            return fail(result(
                LdapResultCode::ProtocolError,
                "only LDAP version 3 is supported",
            ));
        }
        match req.cred {
            LdapBindCred::Simple(password) => {
                self.simple_bind(id, &req.dn, Secret::new(password), session)
                    .await
            }
            LdapBindCred::SASL(sasl)
                if sasl
                    .mechanism
                    .eq_ignore_ascii_case(exop::SASL_DELIVERED_OTP) =>
            {
                let creds = match exop::decode_sasl_credentials(&sasl.credentials) {
                    Ok(c) => c,
                    Err(e) => return fail(decode_error(&e)),
                };
                let req = VerifyRequest {
                    authentication_id: creds.authentication_id,
                    authorization_id: creds.authorization_id,
                    otp: creds.otp,
                };
                match &self.login {
                    Some(login) => login.otp_bind(id, req, self.caller(session)).await,
                    None => bind_outcome(id, self.otp.verify(req, &self.caller(session)).await),
                }
            }
            LdapBindCred::SASL(sasl) => fail(result(
                LdapResultCode::AuthMethodNotSupported,
                format!(
                    "SASL mechanism {} is not supported; use {}",
                    sasl.mechanism,
                    exop::SASL_DELIVERED_OTP
                ),
            )),
            LdapBindCred::Unsupported => fail(result(
                LdapResultCode::AuthMethodNotSupported,
                "authentication method not supported",
            )),
        }
    }

    async fn simple_bind(
        &self,
        id: i32,
        name: &str,
        password: Secret,
        session: &Session,
    ) -> Outcome {
        let fail = |res: LdapResult| Outcome::Bind {
            bound: None,
            response: bind_response(id, res),
        };
        match (name.is_empty(), password.is_empty()) {
            // RFC 4513 §5.1.1: anonymous.
            (true, true) => {
                return Outcome::Bind {
                    bound: None,
                    response: bind_response(id, success()),
                };
            }
            // RFC 4513 §5.1.2: unauthenticated binds are refused.
            (false, true) => {
                return fail(result(
                    LdapResultCode::UnwillingToPerform,
                    "unauthenticated bind (name without password) is not allowed",
                ));
            }
            (true, false) => {
                return fail(result(
                    LdapResultCode::InvalidCredentials,
                    "invalid credentials",
                ));
            }
            (false, false) => {}
        }
        let forms = self.settings.bind_name_forms;
        let identity =
            if let Some(rest) = name.strip_prefix("u:").or_else(|| name.strip_prefix("U:")) {
                if !forms.u_prefixed {
                    return fail(result(
                        LdapResultCode::InvalidCredentials,
                        "invalid credentials",
                    ));
                }
                format!("u:{rest}")
            } else if forms.plain && !name.contains('=') {
                format!("u:{name}")
            } else {
                format!("dn:{name}")
            };
        match &self.login {
            Some(login) => {
                login
                    .password_bind(id, identity, password, self.caller(session))
                    .await
            }
            None => bind_outcome(
                id,
                self.otp
                    .passwords
                    .authenticate(&identity, &password, &self.caller(session))
                    .await,
            ),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Search: the root DSE only (RFC 4512 §5.1).

    fn search(&self, id: i32, req: &LdapSearchRequest) -> Vec<LdapMsg> {
        if !(req.base.is_empty() && req.scope == LdapSearchScope::Base) {
            return vec![LdapMsg::new(
                id,
                LdapOp::SearchResultDone(result(
                    LdapResultCode::UnwillingToPerform,
                    "countersign serves the root DSE only (base \"\", scope base)",
                )),
            )];
        }
        if !self.root_dse_matches(&req.filter) {
            return vec![LdapMsg::new(id, LdapOp::SearchResultDone(success()))];
        }
        // RFC 4511 §4.5.1.8 and RFC 4512 §5.1: `*` (or no list) is the user attributes, `+`
        // the operational ones, which every root DSE attribute but objectClass is; `1.1` none.
        let all_user = req.attrs.is_empty() || req.attrs.iter().any(|a| a == "*");
        let all_operational = req.attrs.iter().any(|a| a == "+");
        let wanted = |name: &str| -> bool {
            let operational = !name.eq_ignore_ascii_case("objectClass");
            (operational && all_operational)
                || (!operational && all_user)
                || req.attrs.iter().any(|a| a.eq_ignore_ascii_case(name))
        };
        let attributes = self
            .root_dse
            .iter()
            // An attribute with no values is not sent (RFC 4511 §4.5.2).
            .filter(|(name, vals)| wanted(name) && !vals.is_empty())
            .map(|(name, vals)| LdapPartialAttribute {
                atype: name.clone(),
                vals: if req.typesonly {
                    Vec::new()
                } else {
                    vals.iter().map(|v| v.as_bytes().to_vec()).collect()
                },
            })
            .collect();
        vec![
            LdapMsg::new(
                id,
                LdapOp::SearchResultEntry(LdapSearchResultEntry {
                    dn: String::new(),
                    attributes,
                }),
            ),
            LdapMsg::new(id, LdapOp::SearchResultDone(success())),
        ]
    }

    /// Evaluates a search filter against the root DSE (presence and equality, combined).
    fn root_dse_matches(&self, filter: &LdapFilter) -> bool {
        let values = |attr: &str| {
            self.root_dse
                .iter()
                .find(|(n, v)| n.eq_ignore_ascii_case(attr) && !v.is_empty())
                .map(|(_, v)| v)
        };
        match filter {
            LdapFilter::Present(a) => values(a).is_some(),
            LdapFilter::Equality(a, v) => {
                values(a).is_some_and(|vals| vals.iter().any(|x| x.eq_ignore_ascii_case(v)))
            }
            LdapFilter::And(fs) => fs.iter().all(|f| self.root_dse_matches(f)),
            LdapFilter::Or(fs) => fs.iter().any(|f| self.root_dse_matches(f)),
            LdapFilter::Not(f) => !self.root_dse_matches(f),
            _ => false,
        }
    }

    // ---------------------------------------------------------------------------------------
    // Extended operations (RFC 4511 §4.12).

    /// Deliver OTP (spec §7.1).
    async fn deliver_otp(&self, id: i32, value: Option<Vec<u8>>, session: &Session) -> Outcome {
        let respond = |m: LdapMsg| Outcome::Respond(vec![m]);
        let refuse = |res: LdapResult| respond(extended(id, res, None, None));
        // The static password travels in this request (spec §7.1, "Transport").
        if !session.secure && !self.settings.allow_deliver_otp_without_tls {
            return refuse(result(
                LdapResultCode::ConfidentialityRequired,
                "Deliver OTP carries a password: use LDAPS or StartTLS",
            ));
        }
        let Some(value) = value else {
            return refuse(result(
                LdapResultCode::ProtocolError,
                "Deliver OTP request: the request value is missing",
            ));
        };
        let decoded = match exop::decode_deliver_otp(&value) {
            Ok(d) => d,
            Err(e) => return refuse(decode_error(&e)),
        };
        let request = DeliverRequest {
            authentication_id: decoded.authentication_id,
            static_password: decoded.static_password,
            mechanisms: decoded.mechanisms,
            texts: decoded.texts,
        };
        match self.otp.deliver(request, &self.caller(session)).await {
            Ok(d) => respond(extended(
                id,
                success(),
                Some(exop::DELIVER_OTP_RESPONSE),
                Some(exop::encode_deliver_otp_result(
                    &d.mechanism,
                    d.user_dn.as_str(),
                    Some(&d.recipient),
                    None,
                )),
            )),
            Err(e) => refuse(map_error(&e)),
        }
    }

    async fn extended(&self, id: i32, req: LdapExtendedRequest, session: &Session) -> Outcome {
        let respond = |m: LdapMsg| Outcome::Respond(vec![m]);
        let refuse = |res: LdapResult| respond(extended(id, res, None, None));
        match req.name.as_str() {
            // A disabled handler falls through to "unsupported", as if it did not exist.
            exop::DELIVER_OTP_REQUEST if self.settings.deliver_otp_enabled => {
                self.deliver_otp(id, req.value, session).await
            }
            exop::GET_SUPPORTED_REQUEST => {
                let Some(value) = req.value else {
                    return refuse(result(
                        LdapResultCode::ProtocolError,
                        "Get Supported OTP Delivery Mechanisms request: the request value is missing",
                    ));
                };
                let dn = match exop::decode_get_supported(&value) {
                    Ok(dn) => dn,
                    Err(e) => return refuse(decode_error(&e)),
                };
                // Addresses only to the user themself, unless configured otherwise.
                let own = session.bound.as_ref().is_some_and(|b| {
                    countersign_core::Dn::new(b.dn.clone()).normalized()
                        == countersign_core::Dn::new(dn.clone()).normalized()
                });
                let view = if own || self.settings.reveal_recipients {
                    RecipientView::Full
                } else {
                    RecipientView::Masked
                };
                match self
                    .otp
                    .supported_mechanisms(&dn, &self.caller(session), view)
                    .await
                {
                    Ok(items) => respond(extended(
                        id,
                        success(),
                        Some(exop::GET_SUPPORTED_RESPONSE),
                        Some(exop::encode_get_supported_result(&items)),
                    )),
                    Err(e) => refuse(map_error(&e)),
                }
            }
            exop::WHO_AM_I | exop::START_TLS if req.value.is_some() => {
                // RFC 4532 §2.1, RFC 4511 §4.14.1: these requests carry no value.
                refuse(result(
                    LdapResultCode::ProtocolError,
                    format!("{} takes no request value", req.name),
                ))
            }
            exop::WHO_AM_I => {
                // RFC 4532 §2: the authzId, empty for anonymous.
                let authz = session
                    .bound
                    .as_ref()
                    .map(|b| format!("dn:{}", b.dn))
                    .unwrap_or_default();
                respond(extended(id, success(), None, Some(authz.into_bytes())))
            }
            exop::START_TLS => {
                // RFC 4511 §4.14.1: refused when TLS is already on or operations are outstanding.
                if !self.settings.tls_available {
                    refuse(result(
                        LdapResultCode::ProtocolError,
                        "StartTLS is not available: no certificate is configured",
                    ))
                } else if session.secure {
                    refuse(result(
                        LdapResultCode::OperationsError,
                        "TLS is already established",
                    ))
                } else if session.outstanding > 0 {
                    refuse(result(
                        LdapResultCode::OperationsError,
                        "operations are outstanding; StartTLS must come alone",
                    ))
                } else {
                    Outcome::StartTls(extended(id, success(), Some(exop::START_TLS), None))
                }
            }
            other => refuse(result(
                LdapResultCode::ProtocolError,
                format!("unsupported extended operation {other}"),
            )),
        }
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
