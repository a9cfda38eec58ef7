//! The pages in English (the default language).

use super::Catalogue;

pub const CATALOGUE: Catalogue = Catalogue {
    brand: "countersign",
    lang_nav_label: "Language",

    approve_title: "Approve sign-in",
    approve_heading: "Approve this sign-in?",
    approve_lead: "{user} asks to sign in to {application}.",
    approve_user: "User",
    approve_application: "Application",
    approve_client: "From address",
    approve_asked_at: "Asked at",
    approve_valid_until: "This link is valid until",
    approve_advice: "Approve only if you know that {user} is signing in right now. If you did not \
                     expect it, reject it.",
    approve_button: "Approve",
    reject_button: "Reject",
    unknown_client: "unknown",

    link_invalid_title: "Link not valid",
    link_invalid_line: "This approval link is not valid. Check that you opened the whole link \
                        from the message.",
    link_invalid_again: "If someone needs your approval, they can sign in again and you will get \
                         a new message.",
    unavailable_title: "Try again shortly",
    unavailable_line: "The server cannot look this request up right now. Nothing was decided; \
                       please try the link again in a moment.",
    refused_title: "Request refused",
    refused_line: "This request did not come from the approval page, so nothing was decided. \
                   Open the link from your message again and use the buttons on that page.",
    link_expired_title: "Link expired",
    link_expired_line: "The request of {who} to sign in to {application} expired undecided at \
                        {time}.",
    link_expired_again: "Nothing can be decided through this link any more. If the sign-in is \
                         still wanted, they can sign in again and you will get a new message.",
    already_approved_title: "Already approved",
    already_rejected_title: "Already rejected",
    already_cancelled_title: "Already cancelled",
    already_approved_line: "The request of {who} to sign in to {application} was already \
                            approved at {time}. Nothing was changed.",
    already_rejected_line: "The request of {who} to sign in to {application} was already \
                            rejected at {time}. Nothing was changed.",
    already_cancelled_line: "The request of {who} to sign in to {application} was already \
                             cancelled at {time}. Nothing was changed.",
    decided_approved_title: "Sign-in approved",
    decided_approved_line: "You approved the sign-in of {who} to {application}. They are being \
                            let in now.",
    decided_rejected_title: "Sign-in rejected",
    decided_rejected_line: "You rejected the sign-in of {who} to {application}. They are not let \
                            in.",
    decided_rejected_advice: "If you think someone else knows their password, tell your security \
                              team.",

    status_too_large_title: "Payload Too Large",
    status_too_large_line: "The request was too large. Nothing was decided.",
    status_method_title: "Method Not Allowed",
    status_method_line: "This page does not take that kind of request.",
    status_media_type_title: "Unsupported Media Type",
    status_server_title: "Server Error",
    status_server_line: "The server could not answer. Nothing was decided.",
    status_bad_request_title: "Bad Request",
    status_not_found_title: "Not Found",
    status_other_title: "Error",
    status_request_line: "The request could not be read. Nothing was decided.",

    signin_title: "Sign in",
    signin_lead: "Sign in to continue to {application}.",
    username_label: "Username",
    password_label: "Password",
    signin_button: "Sign in",
    signin_refused: "The username or password is not correct.",
    signin_too_many: "Too many attempts. Please wait a few minutes, then try again.",
    signin_unavailable: "Signing in is not possible right now. Please try again in a moment.",

    otp_pick_title: "Get a one-time code",
    otp_pick_lead: "{application} also asks for a one-time code. Choose where we should send it.",
    otp_pick_legend: "Send the code to",
    otp_send_button: "Send code",
    otp_none: "No way of sending you a code is set up for your account. Please contact your help \
               desk.",
    otp_not_sent: "The code could not be sent. Try another address or try again in a moment.",

    otp_code_title: "Enter your code",
    otp_code_lead: "We sent a code by {mechanism} to {address}.",
    otp_code_label: "One-time code",
    otp_verify_button: "Verify",
    otp_resend_link: "Send another code",
    otp_code_refused: "This code is not correct or has expired.",

    waiting_title: "Waiting for approval",
    waiting_heading: "Waiting for your manager's approval",
    waiting_approver_label: "We asked",
    waiting_expires_label: "Waiting until",
    waiting_countdown_label: "Time left",
    waiting_status_pending: "Waiting for a decision…",
    waiting_status_approved: "Approved. Taking you on…",
    waiting_status_rejected: "Your manager rejected this sign-in.",
    waiting_status_expired: "Time is up.",
    waiting_hint: "Keep this page open: it moves on by itself once your manager has decided.",
    waiting_noscript: "This page reloads itself every few seconds.",
    cancel_button: "Cancel",

    outcome_approved_title: "Sign-in approved",
    outcome_approved_line: "You are signed in to {application}.",
    outcome_rejected_title: "Sign-in rejected",
    outcome_rejected_line: "Your manager rejected this sign-in.",
    outcome_rejected_advice: "If you think this is a mistake, please talk to your manager.",
    outcome_expired_title: "Time is up",
    outcome_expired_line: "Your manager did not decide in time. You can sign in again to ask \
                           once more.",
    outcome_cancelled_title: "Sign-in cancelled",
    outcome_cancelled_line: "You cancelled this sign-in.",
    outcome_error_title: "Something went wrong",
    outcome_error_line: "The sign-in could not be completed. Please go back and try again.",
    outcome_used_title: "This sign-in is over",
    outcome_used_line: "This sign-in was already completed or has run out. Please start again \
                        from the application.",
    outcome_denied_title: "You cannot sign in now",
    outcome_not_allowed_line: "You cannot sign in to {application} this way. If you need access, \
                               ask your administrator.",
    outcome_unreachable_line: "Your manager could not be asked for approval right now. Please \
                               try again later, or ask your administrator.",
    outcome_elsewhere_line: "A sign-in to {application} for your account is already waiting for \
                             approval on another device. Finish or cancel it there, or wait \
                             until it runs out.",
    back_link: "Back to the application",

    demo_title: "Demo application",
    demo_lead: "This small application of the demo signs you in through countersign with OpenID \
                Connect, verifies the ID token it gets back, and shows what it says about you.",
    demo_hint: "Sign in as dave (password dave-demo-password) to wait for his manager's approval: \
                the approval link shows on the demo's terminal; open it in another tab and \
                approve. Sign in as alice (alice-demo-password) to be let in at once.",
    demo_signin_button: "Sign in to the demo application",
    demo_signed_in_title: "Signed in to the demo application",
    demo_signed_in_lead: "The demo application verified the ID token: its RS256 signature with \
                          the provider's key {kid}, the issuer, the audience, the expiry and the \
                          nonce. It says:",
    demo_claim_sub: "Subject (sub)",
    demo_claim_name: "Name (name)",
    demo_claim_username: "Username (preferred_username)",
    demo_claim_email: "E-mail (email)",
    demo_claim_auth_time: "Signed in at (auth_time)",
    demo_claim_amr: "Methods (amr)",
    demo_claim_acr: "Assurance (acr)",
    demo_claim_absent: "not given",
    demo_again_link: "Sign in again",
    demo_failed_title: "Not signed in",
    demo_no_session_line: "This browser has no sign-in in progress with the demo application: \
                           it ran out, another tab started a new one, or the demo was \
                           restarted.",
    demo_state_line: "This answer does not belong to the sign-in this browser started (its \
                      state does not match), so the demo application refused it.",
    demo_issuer_line: "This answer names another issuer than countersign, so the demo \
                       application refused it.",
    demo_provider_line: "countersign sent you back without signing you in: {error}.",
    demo_denied_line: "The sign-in was rejected, cancelled or ran out of time.",
    demo_no_code_line: "The answer carries neither a code nor an error.",
    demo_token_line: "countersign did not accept the code: {error}.",
    demo_unreachable_line: "The demo application could not get an answer from countersign's \
                            {endpoint}.",
    demo_id_token_line: "The ID token did not pass verification ({why}), so the demo application \
                         does not believe it.",
};
