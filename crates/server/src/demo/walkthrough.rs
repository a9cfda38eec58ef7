//! The walkthrough `countersign demo` prints: numbered steps whose indented lines a newcomer
//! pastes into one bash shell, in order, as printed (tests/it/demo.rs runs them literally).
//! Each step says what to expect; later steps use shell variables earlier ones set. Before the
//! steps, a section for a browser: the OpenID Connect sign-in through the demo's relying party
//! (`/demo`), waiting for the manager, approved from another tab (not a step: nothing to paste).

use std::path::Path;

use countersign_core::Secret;

use crate::ldap::exop::{DeliverOtpRequest, encode_deliver_otp};

/// Where the demo listens and keeps its state, as the walkthrough names them.
pub struct Places<'a> {
    pub http: &'a str,
    pub ldap: &'a str,
    pub ldaps: &'a str,
    pub dir: &'a Path,
    /// The API key of the demo's HTTP application.
    pub api_key: &'a str,
}

/// The name of the demo's HTTP application (its API key is in `<dir>/<name>.key`).
pub const PORTAL: &str = "demo-portal";
/// The OpenID Connect client whose relying party is countersign's own `/demo` page (its
/// secret is in `<dir>/<name>.secret`).
pub const DEMO_APP: &str = "demo-app";
/// The application LDAP binds count as.
pub const LDAP_CLIENTS: &str = "ldap-clients";

/// An approval link in a manager's message, as `grep -o` finds it (the token is 64 hex digits).
const LINK_PATTERN: &str = r"http://[^ ]*/approve/[0-9a-f]*";

/// The whole text: who and where, then the steps.
pub fn walkthrough(p: &Places<'_>) -> String {
    let approve = approve_commands(p.http);
    [
        header(p),
        otp_over_http(p),
        otp_over_ldap(p),
        approved_otp(p, &approve),
        held_bind_and_records(p, &approve),
    ]
    .concat()
}

fn header(p: &Places<'_>) -> String {
    format!(
        r#"
countersign demo: HTTP API on http://{http}, LDAP on ldap://{ldap} (StartTLS) and ldaps://{ldaps}
  state: {dir}
         (SQLite database, OTP key, config, API key, client secret, TLS files, outbox/)
  users: alice / alice-demo-password   (Bob is told each time she signs in)
         bob   / bob-demo-password     (the manager: alice's and dave's sponsor)
         carol / carol-demo-password   (locked: always refused)
         dave  / dave-demo-password    (a contractor: Bob must approve each sign-in)
  application {PORTAL}, API key: {key}
  OpenID Connect client {DEMO_APP}: its relying party is countersign's own page /demo
  TLS: a test CA made for this demo signed the LDAP certificate of 127.0.0.1 and localhost;
       clients trust it through {dir}/ca.pem (trust it nowhere else)
{browser}
In another terminal, in one shell (later steps use variables set by earlier ones):
"#,
        http = p.http,
        ldap = p.ldap,
        ldaps = p.ldaps,
        dir = p.dir.display(),
        key = p.api_key,
        browser = browser(p.http),
    )
}

/// The click-through in a browser (no commands: the steps below are the shell's).
fn browser(http: &str) -> String {
    format!(
        r#"
In a browser: sign in with OpenID Connect and wait for the manager's approval
  - open http://{http}/demo and press "Sign in to the demo application";
  - sign in as dave / dave-demo-password: he is a contractor, so the page waits for Bob;
  - Bob's message with the approval link appears on this terminal (and in outbox/):
    open the link in another tab and press Approve;
  - the first tab moves on by itself and shows the ID token's claims, verified by the demo
    application (amr "pwd mca": password, then the manager's approval). alice is let in at once.
"#
    )
}

/// `OTP=` the code in the newest message holding one. The courier names its files after the
/// time in milliseconds, so the glob lists them oldest first.
fn newest_code(dir: &Path) -> String {
    format!(
        r#"OTP=$(sed -n 's/.*password is: \([0-9]*\).*/\1/p' "{}/outbox"/*.txt | tail -n1)"#,
        dir.display()
    )
}

/// The newest approval link in the managers' messages.
fn newest_link(dir: &Path) -> String {
    format!(
        r#"grep -ho '{LINK_PATTERN}' "{}/outbox"/*.txt | tail -n1"#,
        dir.display()
    )
}

fn otp_over_http(p: &Places<'_>) -> String {
    format!(
        r#"
Deliver OTP over HTTP

1. Ask for a one-time password for alice (it is "sent" by e-mail: printed here, saved in outbox/):

  curl -s http://{http}/api/v1/otp/deliver -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","static_password":"alice-demo-password"}}'

2. Log in with it (this reads the code from the newest message in outbox/; or paste it by hand).
alice's approval profile is "inform": she is in at once, and her manager Bob is told (his
e-mail shows on the demo's terminal):

  {newest_code}
  curl -s http://{http}/api/v1/otp/verify -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","otp":"'$OTP'"}}'

3. The same code a second time is refused (single use):

  curl -s http://{http}/api/v1/otp/verify -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","otp":"'$OTP'"}}'

4. By SMS instead, and what can reach alice (addresses masked for callers who did not log in):

  curl -s http://{http}/api/v1/otp/deliver -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","static_password":"alice-demo-password","mechanisms":["SMS"]}}'
  curl -s 'http://{http}/api/v1/otp/mechanisms?dn=uid=alice,ou=people,dc=example,dc=com'
"#,
        http = p.http,
        newest_code = newest_code(p.dir),
    )
}

fn otp_over_ldap(p: &Places<'_>) -> String {
    format!(
        r#"
Over LDAP, as PingDirectory clients do, with TLS (needs: apt-get install ldap-utils python3-ldap3)

5. Let the LDAP tools of this shell trust the demo's CA, then read the root DSE (extensions,
the SASL mechanism, the delivery mechanisms):

  export LDAPTLS_CACERT="{dir}/ca.pem"
  ldapsearch -x -H ldap://{ldap} -b "" -s base '*' '+'

6. A simple bind over StartTLS (-ZZ: go on only if TLS is up), then Who Am I:

  ldapwhoami -x -ZZ -H ldap://{ldap} -D uid=alice,ou=people,dc=example,dc=com -w alice-demo-password

7. The Deliver OTP extended operation (1.3.6.1.4.1.30221.2.6.24; its value is the BER of
u:alice and her password) over LDAPS. It carries the password, so the server refuses it on a
connection without TLS, as Ping recommends. Answered with the mechanism, her DN and the address:

  ldapexop -x -H ldaps://{ldaps} '1.3.6.1.4.1.30221.2.6.24::{value}'

8. Bind with that code through the UNBOUNDID-DELIVERED-OTP SASL mechanism over LDAPS (Python's
ldap3, checking the server's certificate against the demo's CA; the credentials are the BER of
u:alice and the code), then Who Am I on the same connection:

  {newest_code}
  /usr/bin/python3 -c 'import ssl, sys; from ldap3 import Connection, Server, Tls; \
    from ldap3.protocol.sasl.sasl import send_sasl_negotiation as sasl_bind; \
    ber = lambda tag, value: bytes([tag, len(value)]) + value; \
    tls = Tls(ca_certs_file=sys.argv[2], validate=ssl.CERT_REQUIRED); \
    conn = Connection(Server("ldaps://{ldaps}", tls=tls)); conn.open(); \
    conn.sasl_mechanism = "UNBOUNDID-DELIVERED-OTP"; \
    result = sasl_bind(conn, None, ber(0x30, ber(0x80, b"u:alice") + ber(0x82, sys.argv[1].encode()))); \
    print(result["description"], conn.extend.standard.who_am_i())' $OTP "$LDAPTLS_CACERT"
"#,
        dir = p.dir.display(),
        ldap = p.ldap,
        ldaps = p.ldaps,
        value = alice_deliver_value(),
        newest_code = newest_code(p.dir),
    )
}

/// Approving `$LINK` as a browser would: the page's hidden `csrf` field, then the form posted
/// from the page's own origin (http/csrf.rs); prints the answer page's heading.
fn approve_commands(http: &str) -> String {
    format!(
        r#"CSRF=$(curl -s "$LINK" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p')
  curl -s -X POST "$LINK" -H 'Origin: http://{http}' -H 'Sec-Fetch-Site: same-origin' \
    -d decision=approve -d "csrf=$CSRF" | sed -n 's/.*<h1>\(.*\)<\/h1>.*/\1/p'"#
    )
}

/// The HTTP half of Approved OTP: an information login, then an approval login taken through
/// the manager's link and the long-poll.
fn approved_otp(p: &Places<'_>, approve: &str) -> String {
    let dir = p.dir.display();
    let bearer = r#"-H "Authorization: Bearer $KEY""#;
    let json = "-H 'content-type: application/json'";
    format!(
        r#"
Approved OTP: once the password or code is right, the approval profile the policies pick
either lets the user in and tells the manager ("inform": everyone but contractors), or holds
the login until the manager approves it through a link ("critical": contractors, as dave).

9. alice signs in to the application {PORTAL} with its API key: granted at once. Bob is told;
his message shows on the demo's terminal and in outbox/ (a moment later: it is sent in the
background):

  KEY=$(cat "{dir}/{PORTAL}.key")
  curl -s http://{http}/api/v1/logins {bearer} \
    {json} -d '{{"authentication_id":"u:alice","password":"alice-demo-password"}}'
  echo; sleep 1; grep -h 'signed in to {PORTAL}' "{dir}/outbox"/*.txt | tail -n1

10. dave signs in: pending (202) until Bob decides; the login's id goes in $ID:

  ANSWER=$(curl -s http://{http}/api/v1/logins {bearer} \
    {json} -d '{{"authentication_id":"u:dave","password":"dave-demo-password"}}')
  echo "$ANSWER"; ID=$(echo "$ANSWER" | sed -n 's/.*"login":"\([0-9a-f]*\)".*/\1/p')

11. Bob's message (on the demo's terminal, and in outbox/) holds the approval link:

  LINK=$({newest_link}); echo "$LINK"

12. Open the link in a browser and press Approve. Or do what the browser does: GET the page,
take its hidden csrf field, and POST the form from the page's own origin:

  {approve}

13. {PORTAL} learns the decision: this long-poll answers as soon as the login is decided (at
the latest after 30 s, still pending). Here at once: granted.

  curl -s "http://{http}/api/v1/logins/$ID?wait=30" {bearer}
"#,
        http = p.http,
        newest_link = newest_link(p.dir),
    )
}

/// An LDAP bind held until the manager approves, then what the operator sees.
fn held_bind_and_records(p: &Places<'_>, approve: &str) -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "countersign".to_owned());
    format!(
        r#"
14. dave binds over LDAP (StartTLS). LDAP binds are logins of another application,
{LDAP_CLIENTS}, so Bob is asked again and the bind is held until he approves (at most 120 s).
Start it in the background, approve the new link as soon as it is there (the loop waits for
Bob's new message; it gives up if the bind ends first), then wait for the bind's answer:

  ldapwhoami -x -ZZ -H ldap://{ldap} -D uid=dave,ou=people,dc=example,dc=com -w dave-demo-password &
  until [ "$({newest_link})" != "$LINK" ] || ! kill -0 $! 2>/dev/null; do sleep 0.2; done
  LINK=$({newest_link})
  {approve}
  wait

15. What the managers were asked, and what they decided:

  {exe} --config "{dir}/countersign.toml" approvals list

16. What happened, newest first: every deliver, verify, bind and login (with its application,
policy, profile and approval request), the decisions and the messages to managers, and the
real reason of every refusal. Narrow it with --action login, --user dave, --profile critical:

  {exe} --config "{dir}/countersign.toml" audit

Press Ctrl-C to stop.
"#,
        dir = p.dir.display(),
        ldap = p.ldap,
        newest_link = newest_link(p.dir),
    )
}

/// The Deliver OTP request value for alice, base64 for ldapexop (spec §3.1: `[0]` and `[1]`).
fn alice_deliver_value() -> String {
    let value = encode_deliver_otp(&DeliverOtpRequest {
        authentication_id: "u:alice".into(),
        static_password: Some(Secret::new("alice-demo-password")),
        ..Default::default()
    });
    base64(&value)
}

/// RFC 4648 §4 base64, padded: what `ldapexop OID::VALUE` takes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
