//! The shape of a language's strings: one field per string of every page, grouped by page.
//! `{name}` marks a value filled in by [`super::fill`]; each field's comment names its values.

/// Every user-visible string of the pages, in one language.
#[derive(Debug)]
pub struct Catalogue {
    // ── Every page ──────────────────────────────────────────────────────────────────────────
    /// The product's name: after every title and in the footer.
    pub brand: &'static str,
    /// `aria-label` of the language switch.
    pub lang_nav_label: &'static str,

    // ── The manager's page, `/approve/{token}` ──────────────────────────────────────────────
    pub approve_title: &'static str,
    pub approve_heading: &'static str,
    /// `{user}`, `{application}`.
    pub approve_lead: &'static str,
    pub approve_user: &'static str,
    pub approve_application: &'static str,
    pub approve_client: &'static str,
    pub approve_asked_at: &'static str,
    pub approve_valid_until: &'static str,
    /// `{user}`.
    pub approve_advice: &'static str,
    pub approve_button: &'static str,
    pub reject_button: &'static str,
    /// The client address when none was recorded.
    pub unknown_client: &'static str,

    // ── The manager's notices ───────────────────────────────────────────────────────────────
    pub link_invalid_title: &'static str,
    pub link_invalid_line: &'static str,
    pub link_invalid_again: &'static str,
    pub unavailable_title: &'static str,
    pub unavailable_line: &'static str,
    pub refused_title: &'static str,
    pub refused_line: &'static str,
    pub link_expired_title: &'static str,
    /// `{who}`, `{application}`, `{time}`.
    pub link_expired_line: &'static str,
    pub link_expired_again: &'static str,
    pub already_approved_title: &'static str,
    pub already_rejected_title: &'static str,
    pub already_cancelled_title: &'static str,
    /// `{who}`, `{application}`, `{time}`, for each of the three.
    pub already_approved_line: &'static str,
    pub already_rejected_line: &'static str,
    pub already_cancelled_line: &'static str,
    pub decided_approved_title: &'static str,
    /// `{who}`, `{application}`.
    pub decided_approved_line: &'static str,
    pub decided_rejected_title: &'static str,
    /// `{who}`, `{application}`.
    pub decided_rejected_line: &'static str,
    pub decided_rejected_advice: &'static str,

    // ── Error statuses no handler wrote a page for ──────────────────────────────────────────
    pub status_too_large_title: &'static str,
    pub status_too_large_line: &'static str,
    pub status_method_title: &'static str,
    pub status_method_line: &'static str,
    pub status_media_type_title: &'static str,
    pub status_server_title: &'static str,
    pub status_server_line: &'static str,
    pub status_bad_request_title: &'static str,
    pub status_not_found_title: &'static str,
    pub status_other_title: &'static str,
    /// The line of every client error without a line of its own.
    pub status_request_line: &'static str,

    // ── Sign-in, `/flow/{flow}` ─────────────────────────────────────────────────────────────
    pub signin_title: &'static str,
    /// `{application}`.
    pub signin_lead: &'static str,
    pub username_label: &'static str,
    pub password_label: &'static str,
    pub signin_button: &'static str,
    /// The one refusal, whatever was wrong (no hint whether the user exists).
    pub signin_refused: &'static str,
    pub signin_too_many: &'static str,
    pub signin_unavailable: &'static str,

    // ── OTP: picking where the code goes ────────────────────────────────────────────────────
    pub otp_pick_title: &'static str,
    /// `{application}`.
    pub otp_pick_lead: &'static str,
    pub otp_pick_legend: &'static str,
    pub otp_send_button: &'static str,
    pub otp_none: &'static str,
    pub otp_not_sent: &'static str,

    // ── OTP: entering the code ──────────────────────────────────────────────────────────────
    pub otp_code_title: &'static str,
    /// `{mechanism}`, `{address}`.
    pub otp_code_lead: &'static str,
    pub otp_code_label: &'static str,
    pub otp_verify_button: &'static str,
    pub otp_resend_link: &'static str,
    pub otp_code_refused: &'static str,

    // ── Waiting for the manager ─────────────────────────────────────────────────────────────
    pub waiting_title: &'static str,
    pub waiting_heading: &'static str,
    pub waiting_approver_label: &'static str,
    pub waiting_expires_label: &'static str,
    pub waiting_countdown_label: &'static str,
    pub waiting_status_pending: &'static str,
    pub waiting_status_approved: &'static str,
    pub waiting_status_rejected: &'static str,
    pub waiting_status_expired: &'static str,
    pub waiting_hint: &'static str,
    pub waiting_noscript: &'static str,
    pub cancel_button: &'static str,

    // ── Outcomes of a sign-in ───────────────────────────────────────────────────────────────
    pub outcome_approved_title: &'static str,
    /// `{application}`.
    pub outcome_approved_line: &'static str,
    pub outcome_rejected_title: &'static str,
    pub outcome_rejected_line: &'static str,
    pub outcome_rejected_advice: &'static str,
    pub outcome_expired_title: &'static str,
    pub outcome_expired_line: &'static str,
    pub outcome_cancelled_title: &'static str,
    pub outcome_cancelled_line: &'static str,
    pub outcome_error_title: &'static str,
    pub outcome_error_line: &'static str,
    pub outcome_used_title: &'static str,
    pub outcome_used_line: &'static str,
    /// A sign-in the policies or the approval step refused (not the manager).
    pub outcome_denied_title: &'static str,
    /// `no_matching_policy`, `method_not_allowed`; `{application}`.
    pub outcome_not_allowed_line: &'static str,
    /// `approver_unreachable`, `approval_not_sent`.
    pub outcome_unreachable_line: &'static str,
    /// `approval_pending_elsewhere`; `{application}`.
    pub outcome_elsewhere_line: &'static str,
    pub back_link: &'static str,

    // ── The demo relying party, `/demo` (only under `countersign demo`) ─────────────────────
    pub demo_title: &'static str,
    pub demo_lead: &'static str,
    /// How to see the manager's approval: which demo user, where the link shows.
    pub demo_hint: &'static str,
    pub demo_signin_button: &'static str,
    pub demo_signed_in_title: &'static str,
    /// `{kid}`: the signing key's id.
    pub demo_signed_in_lead: &'static str,
    pub demo_claim_sub: &'static str,
    pub demo_claim_name: &'static str,
    pub demo_claim_username: &'static str,
    pub demo_claim_email: &'static str,
    pub demo_claim_auth_time: &'static str,
    pub demo_claim_amr: &'static str,
    pub demo_claim_acr: &'static str,
    /// A claim the token does not carry.
    pub demo_claim_absent: &'static str,
    pub demo_again_link: &'static str,
    pub demo_failed_title: &'static str,
    pub demo_no_session_line: &'static str,
    pub demo_state_line: &'static str,
    pub demo_issuer_line: &'static str,
    /// `{error}`: OAuth's error code (`access_denied`, ...).
    pub demo_provider_line: &'static str,
    pub demo_denied_line: &'static str,
    pub demo_no_code_line: &'static str,
    /// `{error}`: the token endpoint's error code.
    pub demo_token_line: &'static str,
    /// `{endpoint}`: `/token` or `/jwks`.
    pub demo_unreachable_line: &'static str,
    /// `{why}`: what did not verify (`signature`, `aud`, `nonce`, ...).
    pub demo_id_token_line: &'static str,
}
