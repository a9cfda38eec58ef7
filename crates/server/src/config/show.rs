//! `countersign config show [SECTION]`: the effective configuration, every default filled in,
//! written as TOML in the file's own keys (as PingDirectory's `dsconfig get-...-prop` lists a
//! handler's properties). Secrets are never written: a secret shows the `*_file` path or
//! `*_env` variable it comes from, with a note that it is set; keys left unset are comments.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use countersign_core::application::AuthMethod;
use countersign_core::approval::{ApprovalDelivery, Policy, ProfileKind};
use countersign_core::mechanism::Channel;
use countersign_core::ratelimit::Rate;

use super::{
    ApplicationConfig, ApprovalProfileConfig, Config, DirectoryConfig, LdapDirectoryConfig,
    LocalDirectoryConfig, MailProfile, MechanismConfig, SECTIONS, SecretSource, SmsEncoding,
    SmsProfile, StoreConfig, Tls, Transport,
};

/// `config show` was asked for a section the file format does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown section {0:?}; expected one of {list}", list = SECTIONS.join(", "))]
pub struct UnknownSection(pub String);

impl Config {
    /// The effective configuration as TOML: every section, or only `section`.
    pub fn show(&self, section: Option<&str>) -> Result<String, UnknownSection> {
        if let Some(s) = section
            && !SECTIONS.contains(&s)
        {
            return Err(UnknownSection(s.to_owned()));
        }
        let mut out = Toml::default();
        for name in SECTIONS {
            if section.is_none_or(|s| s == name) {
                self.write_section(name, &mut out);
            }
        }
        Ok(out.text.trim_start().to_owned())
    }

    fn write_section(&self, name: &str, out: &mut Toml) {
        match name {
            "server" => {
                out.table(name);
                out.opt_str("public_url", self.public_url.as_deref());
                out.path("secret_key_file", &self.secret_key_file);
            }
            "store" => {
                out.table(name);
                let StoreConfig::Sqlite(path) = &self.store;
                out.str("url", &format!("sqlite://{}", absolute(path)));
            }
            "listen" => {
                out.table(name);
                for (key, addr) in [
                    ("http", self.listen_http),
                    ("ldap", self.listen_ldap),
                    ("ldaps", self.listen_ldaps),
                ] {
                    out.opt_str(key, addr.map(|a| a.to_string()).as_deref());
                }
            }
            "http" => {
                out.table(name);
                out.bool("reveal_recipients", self.http_reveal_recipients);
                out.duration("header_read_timeout", self.http_header_read_timeout);
                out.duration("body_read_timeout", self.http_body_read_timeout);
                out.int("max_connections", self.http_max_connections);
                out.int(
                    "max_connections_per_client",
                    self.http_max_connections_per_client,
                );
                let proxies: Vec<String> = self
                    .http_trusted_proxies
                    .iter()
                    .map(|n| n.to_string())
                    .collect();
                out.list("trusted_proxies", &proxies);
            }
            "ldap" => self.write_ldap(out),
            "directory" => {
                out.none_if_empty(name, self.directories.is_empty());
                for d in &self.directories {
                    out.array_item(name);
                    match d {
                        DirectoryConfig::Local(l) => write_local(l, out),
                        DirectoryConfig::Ldap(l) => write_ldap_directory(l, out),
                    }
                }
            }
            "password_generator" => {
                out.table(name);
                let g = &self.password_generator;
                out.map("character_sets", &g.character_sets);
                out.str("format", &g.format);
            }
            "mail_profile" => {
                out.none_if_empty(name, self.mail_profiles.is_empty());
                for p in &self.mail_profiles {
                    out.array_item(name);
                    write_mail_profile(p, out);
                }
            }
            "sms_profile" => {
                out.none_if_empty(name, self.sms_profiles.is_empty());
                for p in &self.sms_profiles {
                    out.array_item(name);
                    write_sms_profile(p, out);
                }
            }
            "delivery_mechanism" => {
                out.none_if_empty(name, self.mechanisms.is_empty());
                for m in &self.mechanisms {
                    out.array_item(name);
                    write_mechanism(m, out);
                }
            }
            "deliver_otp" => {
                out.table(name);
                let d = &self.deliver_otp;
                out.bool("enabled", d.enabled);
                out.opt_str("description", d.description.as_deref());
                out.list("identity_mapper", &d.directories);
                out.list("default_mechanisms", &d.default_mechanisms);
                out.duration("otp_validity", d.otp_validity);
                out.int("max_failed_attempts", d.max_failed_attempts);
            }
            "approval_profile" | "policy" | "approval" | "outbox" | "application" => {
                self.write_approved_otp(name, out);
            }
            "oidc" => {
                out.table(name);
                let o = &self.oidc;
                out.duration("code_lifetime", o.code_lifetime);
                out.duration("access_token_lifetime", o.access_token_lifetime);
                out.duration("id_token_lifetime", o.id_token_lifetime);
                out.duration("sign_in_lifetime", o.sign_in_lifetime);
            }
            "rate_limits" => {
                out.table(name);
                let r = &self.rate_limits;
                out.rate("deliver_per_user", r.deliver_per_user);
                out.rate("deliver_per_client", r.deliver_per_client);
                out.rate("verify_per_user", r.verify_per_user);
                out.rate("verify_per_client", r.verify_per_client);
                out.rate("failures_per_user", r.failures_per_user);
            }
            "audit" => {
                out.table(name);
                match self.audit_retention {
                    Some(d) => out.duration("retention", d),
                    None => out.str("retention", "off"),
                }
            }
            _ => {}
        }
    }

    fn write_ldap(&self, out: &mut Toml) {
        let l = &self.ldap;
        out.table("ldap");
        let (cert, key) = l.tls_files.as_ref().map(|(c, k)| (c, k)).unzip();
        out.opt_path("tls_certificate_file", cert);
        out.opt_path("tls_key_file", key);
        out.bool(
            "allow_deliver_otp_without_tls",
            l.allow_deliver_otp_without_tls,
        );
        let mut forms = vec!["dn".to_owned()];
        if l.bind_name_forms.u_prefixed {
            forms.push("u".into());
        }
        if l.bind_name_forms.plain {
            forms.push("name".into());
        }
        out.list("bind_name_forms", &forms);
        out.bool("reveal_recipients", l.reveal_recipients);
        out.int("max_message_bytes", l.max_message_bytes);
        out.duration("idle_timeout", l.idle_timeout);
        out.int("max_connections", l.max_connections);
        out.int("max_connections_per_client", l.max_connections_per_client);
        out.int(
            "max_operations_per_connection",
            l.max_operations_per_connection,
        );
        out.opt_str("application", l.application.as_deref());
        out.duration("approval_wait", l.approval_wait);
    }

    /// The Approved OTP sections and the applications.
    fn write_approved_otp(&self, name: &str, out: &mut Toml) {
        let a = &self.approval;
        match name {
            "approval_profile" => {
                out.none_if_empty(name, a.profiles.is_empty());
                for p in &a.profiles {
                    out.array_item(name);
                    write_approval_profile(p, out);
                }
            }
            "policy" => {
                out.none_if_empty(name, a.policies.is_empty());
                for p in &a.policies {
                    out.array_item(name);
                    write_policy(p, out);
                }
            }
            "approval" => {
                out.table(name);
                out.opt_str("default_profile", a.default_profile.as_deref());
                out.duration("grace_period", a.grace_period);
                out.duration("rejection_cooldown", a.rejection_cooldown);
            }
            "outbox" => {
                out.table(name);
                out.duration("first_retry", a.retry.first_delay);
                out.duration("max_retry_delay", a.retry.max_delay);
                out.duration("give_up_after", a.retry.give_up_after);
            }
            "application" => {
                out.none_if_empty(name, self.applications.is_empty());
                for app in &self.applications {
                    out.array_item(name);
                    write_application(app, out);
                }
            }
            _ => {}
        }
    }
}

fn write_approval_profile(p: &ApprovalProfileConfig, out: &mut Toml) {
    out.str("name", &p.name);
    out.str("type", p.kind.as_str());
    out.opt_str("server", Some(p.server.as_str()).filter(|s| !s.is_empty()));
    out.str("message", &p.message_text);
    out.duration("link_expiration", p.link_expiration);
    out.str("delivery", p.delivery.as_str());
    out.str(p.transport_key, &p.transport);
    if p.delivery == ApprovalDelivery::Email {
        out.str("email_subject", &p.email_subject);
    }
    out.opt_str("default_recipient", p.default_recipient.as_deref());
    out.list("fallback_directories", &p.directories);
    out.list("methods", &method_names(&p.methods));
    if p.kind == ProfileKind::Information {
        out.duration("inform_interval", p.inform_interval);
    }
}

fn write_policy(p: &Policy, out: &mut Toml) {
    out.str("name", &p.name);
    out.str("profile", &p.profile);
    out.str("directory", &p.directory);
    out.str("attribute", &p.attribute);
    let values: Vec<String> = p.values.iter().map(|v| v.as_str().to_owned()).collect();
    out.list("values", &values);
}

fn write_application(a: &ApplicationConfig, out: &mut Toml) {
    out.str("name", &a.name);
    out.secret("api_key", a.api_key_from.as_ref());
    out.list("methods", &method_names(&a.methods));
    out.bool("approved_otp", a.approved_otp);
    if let Some(c) = &a.oidc {
        out.list("redirect_uris", &c.redirect_uris);
        match &c.secret_from {
            Some(from) => out.secret("client_secret", Some(from)),
            None => out.bool("public_client", true),
        }
    }
}

fn method_names(methods: &[AuthMethod]) -> Vec<String> {
    methods.iter().map(|m| m.as_str().to_owned()).collect()
}

fn write_local(d: &LocalDirectoryConfig, out: &mut Toml) {
    out.str("name", &d.name);
    out.str("type", "local");
    out.str("base_dn", &d.base_dn);
    out.list("match_attributes", &d.match_attributes);
}

fn write_ldap_directory(d: &LdapDirectoryConfig, out: &mut Toml) {
    out.str("name", &d.name);
    out.str("type", "ldap");
    out.str("url", &without_credentials(&d.url));
    out.bool("starttls", d.starttls);
    out.opt_path("ca_file", d.ca_file.as_ref());
    out.opt_str("bind_dn", d.bind_dn.as_deref());
    out.secret("bind_password", d.bind_password_from.as_ref());
    out.list("user_base_dns", &d.user_base_dns);
    out.list("match_attributes", &d.match_attributes);
    out.opt_str("match_filter", d.match_filter.as_deref());
    out.str("mail_attribute", &d.mail_attribute);
    out.str("mobile_attribute", &d.mobile_attribute);
    out.str("display_name_attribute", &d.display_name_attribute);
    out.str(
        "id_attribute",
        d.id_attribute
            .as_deref()
            .unwrap_or("entryUUID, else objectGUID"),
    );
    out.str("manager_attribute", &d.manager_attribute);
    out.str(
        "preferred_mechanism_attribute",
        &d.preferred_mechanism_attribute,
    );
    out.list("attributes", &d.attributes);
    out.duration("timeout", d.timeout);
    let on_unavailable = if d.stop_when_unavailable {
        "stop"
    } else {
        "next"
    };
    out.str("on_unavailable", on_unavailable);
    out.str("account_policy", d.account_policy.name());
    out.opt_str("password_policy_dn", d.password_policy_dn.as_deref());
}

fn write_mail_profile(p: &MailProfile, out: &mut Toml) {
    out.str("name", &p.name);
    out.str("host", &p.host);
    out.int("port", p.port);
    let tls = match p.tls {
        Tls::None => "none",
        Tls::StartTls => "starttls",
        Tls::Implicit => "tls",
    };
    out.str("tls", tls);
    out.opt_path("ca_file", p.ca_file.as_ref());
    out.opt_str("username", p.credentials.as_ref().map(|(u, _)| u.as_str()));
    out.secret("password", p.password_from.as_ref());
    out.str("from", &p.from);
    out.duration("timeout", p.timeout);
    out.int("max_idle_connections", p.max_idle_connections);
    out.duration("idle_timeout", p.idle_timeout);
}

fn write_sms_profile(p: &SmsProfile, out: &mut Toml) {
    out.str("name", &p.name);
    out.str("url", &without_credentials(&p.url));
    out.str("method", &p.method);
    // Plain headers are written in the file as they are; the others are secrets.
    let plain: BTreeMap<String, String> = p
        .headers
        .iter()
        .filter(|(h, _)| !p.secret_headers.contains_key(h))
        .map(|(h, v)| (h.clone(), v.expose().to_owned()))
        .collect();
    let mut files = BTreeMap::new();
    let mut env = BTreeMap::new();
    for (h, source) in &p.secret_headers {
        match source {
            SecretSource::File(f) => files.insert(h.clone(), absolute(f)),
            SecretSource::Env(v) => env.insert(h.clone(), v.clone()),
        };
    }
    out.map("headers", &plain);
    out.map("header_files", &files);
    if !files.is_empty() {
        out.comment("header_files: secrets set (values not shown)");
    }
    out.map("header_env", &env);
    if !env.is_empty() {
        out.comment("header_env: secrets set from the environment (values not shown)");
    }
    out.map("body", &p.body);
    let encoding = match p.encoding {
        SmsEncoding::Json => "json",
        SmsEncoding::Form => "form",
    };
    out.str("encoding", encoding);
    out.duration("timeout", p.timeout);
    if p.success_status.is_empty() {
        out.comment("success_status = (any 2xx)");
    } else {
        let codes: Vec<String> = p.success_status.iter().map(u16::to_string).collect();
        out.raw("success_status", &format!("[{}]", codes.join(", ")));
    }
}

fn write_mechanism(m: &MechanismConfig, out: &mut Toml) {
    out.str("name", &m.name);
    match &m.transport {
        Transport::Email { mail_profile } => {
            out.str("type", "email");
            out.bool("enabled", m.enabled);
            out.str("mail_profile", mail_profile);
        }
        Transport::Sms { sms_profile } => {
            out.str("type", "sms");
            out.bool("enabled", m.enabled);
            out.str("sms_profile", sms_profile);
        }
        Transport::File { directory, print } => {
            out.str("type", "file");
            out.bool("enabled", m.enabled);
            out.path("directory", directory);
            let channel = match m.channel {
                Channel::Email => "email",
                Channel::Sms => "sms",
            };
            out.str("channel", channel);
            out.bool("print", *print);
        }
    }
    out.opt_str("subject", m.subject.as_deref());
    out.opt_str("text_before_otp", m.text_before_otp.as_deref());
    out.opt_str("text_after_otp", m.text_after_otp.as_deref());
}

/// Writes TOML: tables, array items and `key = value` lines, values quoted as TOML wants.
#[derive(Default)]
struct Toml {
    text: String,
}

impl Toml {
    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn table(&mut self, name: &str) {
        self.line(&format!("\n[{name}]"));
    }

    fn array_item(&mut self, name: &str) {
        self.line(&format!("\n[[{name}]]"));
    }

    fn none_if_empty(&mut self, name: &str, empty: bool) {
        if empty {
            self.line(&format!("\n# no [[{name}]]"));
        }
    }

    fn comment(&mut self, text: &str) {
        self.line(&format!("# {text}"));
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.line(&format!("{key} = {value}"));
    }

    fn str(&mut self, key: &str, value: &str) {
        self.raw(key, &quote(value));
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.comment(&format!("{key} = (not set)")),
        }
    }

    fn path(&mut self, key: &str, value: &Path) {
        self.str(key, &absolute(value));
    }

    fn opt_path(&mut self, key: &str, value: Option<&std::path::PathBuf>) {
        self.opt_str(key, value.map(|p| absolute(p)).as_deref());
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.raw(key, if value { "true" } else { "false" });
    }

    fn int(&mut self, key: &str, value: impl std::fmt::Display) {
        self.raw(key, &value.to_string());
    }

    fn duration(&mut self, key: &str, value: Duration) {
        self.str(key, &format_duration(value));
    }

    fn rate(&mut self, key: &str, value: Option<Rate>) {
        match value {
            Some(r) => self.str(key, &format!("{}/{}", r.burst, format_duration(r.period))),
            None => self.str(key, "off"),
        }
    }

    fn list(&mut self, key: &str, values: &[String]) {
        let items: Vec<String> = values.iter().map(|v| quote(v)).collect();
        self.raw(key, &format!("[{}]", items.join(", ")));
    }

    fn map(&mut self, key: &str, values: &BTreeMap<String, String>) {
        let items: Vec<String> = values
            .iter()
            .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
            .collect();
        if items.is_empty() {
            self.raw(key, "{}");
        } else {
            self.raw(key, &format!("{{ {} }}", items.join(", ")));
        }
    }

    /// A secret: where it comes from and that it is set, never its value.
    fn secret(&mut self, name: &str, source: Option<&SecretSource>) {
        match source {
            Some(SecretSource::File(p)) => {
                self.line(&format!(
                    "{name}_file = {}  # secret set (value not shown)",
                    quote(&absolute(p))
                ));
            }
            Some(SecretSource::Env(var)) => {
                self.line(&format!(
                    "{name}_env = {}  # secret set from the environment (value not shown)",
                    quote(var)
                ));
            }
            None => self.comment(&format!("{name}_file = (not set)")),
        }
    }
}

/// A path as it reads from anywhere: relative ones (a relative `--config`) made absolute.
/// A URL as `config show` prints it: a password in its user part or a query (where gateways
/// take API keys) is secret, so both are replaced by `REDACTED`.
fn without_credentials(url: &str) -> String {
    let (url, had_query) = match url.split_once('?') {
        Some((base, _)) => (base, true),
        None => (url, false),
    };
    let redacted = match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://REDACTED@{host}{path}"),
                None => format!("{scheme}://{rest}"),
            }
        }
        None => url.to_owned(),
    };
    if had_query {
        format!("{redacted}?REDACTED")
    } else {
        redacted
    }
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `90s` → `"90s"`, `300s` → `"5m"`, `5400s` → `"1h 30m"`: the largest whole units, in a form
/// the config accepts back.
fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let mut parts = Vec::new();
    let mut secs = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if d.subsec_millis() > 0 {
        parts.push(format!("{}ms", d.subsec_millis()));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_and_queries() {
        assert_eq!(
            without_credentials("https://user:pw@sms.example.com/send?key=s3cret"),
            "https://REDACTED@sms.example.com/send?REDACTED"
        );
        assert_eq!(
            without_credentials("ldaps://ldap.example.com:636"),
            "ldaps://ldap.example.com:636"
        );
    }

    #[test]
    fn durations_are_written_in_whole_units_the_config_reads_back() {
        for (secs, text) in [
            (90, "1m 30s"),
            (300, "5m"),
            (5400, "1h 30m"),
            (400 * 86_400, "400d"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(format_duration(d), text);
            assert_eq!(super::super::parse_duration(text), Some(d));
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
    }

    #[test]
    fn strings_are_quoted_as_toml() {
        assert_eq!(quote("a\"b\\c\nd\u{1b}"), "\"a\\\"b\\\\c\\nd\\u001B\"");
    }
}
