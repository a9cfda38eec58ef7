//! SMS through an HTTP gateway: the profile's body fields are rendered with `{to}` and
//! `{message}` and sent as JSON or a form. A status outside the success list, a timeout or a
//! refused connection is a failure, so the next mechanism is tried.

use async_trait::async_trait;
use countersign_core::ports::{Courier, DeliveryError, OutboundMessage};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};

use crate::config::{SmsEncoding, SmsProfile};
use crate::setup::SetupError;

pub struct SmsCourier {
    client: reqwest::Client,
    profile: SmsProfile,
}

impl SmsCourier {
    pub fn new(profile: &SmsProfile) -> Result<Self, SetupError> {
        let refuse =
            |detail: String| SetupError::new(format!("sms_profile {}", profile.name), detail);
        for (name, value) in &profile.headers {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| refuse(format!("{name:?} is not a header name")))?;
            HeaderValue::from_str(value.expose())
                .map_err(|_| refuse(format!("the value of header {name} is not valid")))?;
        }
        let client = reqwest::Client::builder()
            .timeout(profile.timeout)
            .connect_timeout(profile.timeout)
            .build()
            .map_err(|e| refuse(e.to_string()))?;
        Ok(Self {
            client,
            profile: profile.clone(),
        })
    }

    fn fields(&self, message: &OutboundMessage) -> Vec<(String, String)> {
        self.profile
            .body
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    render(v, &message.to, message.body.expose(), |s| s.to_owned()),
                )
            })
            .collect()
    }
}

/// Replaces `{to}` and `{message}` in one pass, so neither value can inject the other.
pub fn render(template: &str, to: &str, message: &str, encode: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + message.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{to}") {
            out.push_str(&encode(to));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{message}") {
            out.push_str(&encode(message));
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[async_trait]
impl Courier for SmsCourier {
    async fn send(&self, message: &OutboundMessage) -> Result<(), DeliveryError> {
        let p = &self.profile;
        let url = render(&p.url, &message.to, "", url_encode);
        let fields = self.fields(message);
        let mut req = match p.method.as_str() {
            "GET" => {
                let query: String = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&fields)
                    .finish();
                let sep = if url.contains('?') { '&' } else { '?' };
                self.client.get(format!("{url}{sep}{query}"))
            }
            method => {
                let builder = if method == "PUT" {
                    self.client.put(&url)
                } else {
                    self.client.post(&url)
                };
                match p.encoding {
                    SmsEncoding::Json => {
                        let map: serde_json::Map<String, serde_json::Value> = fields
                            .into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v)))
                            .collect();
                        builder
                            .header(CONTENT_TYPE, "application/json")
                            .body(serde_json::Value::Object(map).to_string())
                    }
                    SmsEncoding::Form => builder
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(
                            form_urlencoded::Serializer::new(String::new())
                                .extend_pairs(&fields)
                                .finish(),
                        ),
                }
            }
        };
        for (name, value) in &p.headers {
            req = req.header(name.as_str(), value.expose());
        }
        let response = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            DeliveryError::Failed(format!("SMS gateway ({}): {kind}", p.name))
        })?;
        let status = response.status().as_u16();
        let ok = if p.success_status.is_empty() {
            response.status().is_success()
        } else {
            p.success_status.contains(&status)
        };
        if ok {
            Ok(())
        } else {
            Err(DeliveryError::Failed(format!(
                "SMS gateway ({}): answered HTTP {status}",
                p.name
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_single_pass() {
        let out = render("To {to}: {message} {x}", "{message}", "code 1", |s| {
            s.to_owned()
        });
        assert_eq!(out, "To {message}: code 1 {x}");
    }
}
