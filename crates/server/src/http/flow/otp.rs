//! The delivered-OTP step of a sign-in, for applications whose methods do not include the
//! password alone: after the password, pick a mechanism (masked addresses, as Get Supported
//! shows them; chosen by its place in the list, never by an address from the browser), the
//! code sent as a Deliver OTP step-up (spec §7.1 step 3: the password was checked), then the
//! code entered, which is an OTP login of the application.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use countersign_core::mechanism::MechanismChoice;
use countersign_core::oidc::{AMR_OTP, AMR_PASSWORD};
use countersign_core::otp::{DeliverRequest, RecipientView, VerifyRequest};
use countersign_core::{AuthError, Secret};

use super::cookie::{Sent, Step};
use super::steps::{
    Here, Posted, advance, denied_page, field, finish, form_error, form_page, user_of,
};
use super::{html, see_other};
use crate::http::api::ApiState;
use crate::http::views::{FormError, MechanismChoice as ShownMechanism, OtpCode, OtpPick};

pub(super) async fn pick_page(h: &Here, dn: &str, error: Option<FormError>) -> Response {
    let found =
        h.o.otp
            .supported_mechanisms(dn, &h.caller, RecipientView::Masked)
            .await
            .unwrap_or_default();
    let mechanisms: Vec<ShownMechanism> = found
        .into_iter()
        .filter(|m| m.supported)
        .enumerate()
        .map(|(index, m)| ShownMechanism {
            index,
            name: m.mechanism,
            address: m.recipient.unwrap_or_default(),
        })
        .collect();
    let csrf = h.o.flow_key.csrf(&h.flow.id);
    let page = OtpPick {
        flow: &h.flow.id,
        csrf: &csrf,
        application: &h.app.name,
        mechanisms,
        error,
    };
    html(StatusCode::OK, page.render(h.lang))
}

pub(super) fn code_page(h: &Here, sent: &Sent, error: Option<FormError>) -> Response {
    let csrf = h.o.flow_key.csrf(&h.flow.id);
    let resend = format!("/flow/{}/otp/send", h.flow.id);
    let page = OtpCode {
        flow: &h.flow.id,
        csrf: &csrf,
        mechanism: &sent.mechanism,
        address: &sent.address,
        resend: &resend,
        error,
    };
    form_page(h, page.render(h.lang))
}

pub async fn send(State(s): State<ApiState>, Posted { h, fields }: Posted) -> Response {
    let Step::Otp {
        dn,
        username,
        auth_time,
        ..
    } = h.flow.step.clone()
    else {
        return see_other(&format!("/flow/{}", h.flow.id));
    };
    // The mechanism by its place in the list the page showed (never an address from the
    // browser).
    let index: Option<usize> = field(&fields, "mechanism").and_then(|v| v.parse().ok());
    let found =
        h.o.otp
            .supported_mechanisms(&dn, &h.caller, RecipientView::Masked)
            .await
            .unwrap_or_default();
    let chosen = index.and_then(|i| found.into_iter().filter(|m| m.supported).nth(i));
    let Some(chosen) = chosen else {
        return pick_page(&h, &dn, Some(FormError::NotSent)).await;
    };
    let Some(user) = user_of(&h, &dn).await else {
        return pick_page(&h, &dn, Some(FormError::Unavailable)).await;
    };
    // Step-up (spec §7.1 step 3): the password was checked at the first step.
    let mut caller = h.caller.clone();
    caller.bound_as = Some(user.key());
    let request = DeliverRequest {
        authentication_id: format!("dn:{dn}"),
        static_password: None,
        mechanisms: Some(vec![MechanismChoice {
            name: chosen.mechanism.clone(),
            recipient: chosen.recipient.clone(),
        }]),
        texts: Default::default(),
    };
    let otp = h.o.otp.clone();
    let delivered = s
        .detached(async move { otp.deliver(request, &caller).await })
        .await;
    match delivered {
        Ok(Ok(_)) => advance(
            &h,
            Step::Otp {
                dn,
                username,
                auth_time,
                sent: Some(Sent {
                    mechanism: chosen.mechanism,
                    address: chosen.recipient.unwrap_or_default(),
                }),
            },
        ),
        Ok(Err(e)) => pick_page(&h, &dn, Some(form_error(&e))).await,
        Err(_) => pick_page(&h, &dn, Some(FormError::Unavailable)).await,
    }
}

pub async fn verify(State(s): State<ApiState>, Posted { h, fields }: Posted) -> Response {
    let Step::Otp {
        dn,
        auth_time,
        sent: Some(sent),
        ..
    } = h.flow.step.clone()
    else {
        return see_other(&format!("/flow/{}", h.flow.id));
    };
    let code = field(&fields, "code").unwrap_or_default();
    let request = VerifyRequest {
        authentication_id: format!("dn:{dn}"),
        authorization_id: None,
        otp: Secret::new(code.trim()),
    };
    let caller = h.caller.clone();
    let login = h.o.login.clone();
    let app = h.app.clone();
    let result = s
        .detached(async move { login.login_otp(&app, request, &caller).await })
        .await;
    let amr = vec![AMR_PASSWORD.into(), AMR_OTP.into()];
    match result {
        Ok(Ok(outcome)) => finish(&h, outcome, auth_time, amr).await,
        Ok(Err(AuthError::Denied(denial))) => denied_page(&h, denial),
        Ok(Err(e)) => code_page(&h, &sent, Some(form_error(&e))),
        Err(_) => code_page(&h, &sent, Some(FormError::Unavailable)),
    }
}
