//! The pages' languages: English and Turkish (SecTrail's own). Every user-visible string of every
//! page lives in one [`Catalogue`] per language ([`en`], [`tr`]): one struct, so a string missing
//! from a language is a compile error, not a blank on a page. Strings with values carry `{name}`
//! placeholders that [`fill`] replaces; escaping stays askama's (fill first, render escaped).
//! Which language a request gets is [`Lang::choose`]: `?lang=` > the `cs_lang` cookie >
//! `Accept-Language` (RFC 9110 §12.5.4) > English; [`Lang::of_request`] reads all three and
//! says which cookie to set when `?lang=` chose.

mod catalogue;
pub mod en;
pub mod tr;

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Uri, header};

pub use catalogue::Catalogue;

/// The cookie that remembers a language picked with the page's switch.
pub const LANG_COOKIE: &str = "cs_lang";

/// A year, in seconds: how long the switch's choice is remembered.
const LANG_COOKIE_MAX_AGE: u32 = 365 * 24 * 60 * 60;

/// A language the pages are written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    #[default]
    En,
    Tr,
}

impl Lang {
    /// Every language, in the order the switch lists them.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Tr];

    /// The BCP 47 tag, as `<html lang>`, `Content-Language` and `?lang=` use it.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Tr => "tr",
        }
    }

    /// The language's own name, as the switch shows it whatever the page's language.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Tr => "Türkçe",
        }
    }

    pub fn catalogue(self) -> &'static Catalogue {
        match self {
            Lang::En => &en::CATALOGUE,
            Lang::Tr => &tr::CATALOGUE,
        }
    }

    /// A value of `?lang=` or of the cookie: exactly a code we have (any case), nothing else.
    pub fn parse(value: &str) -> Option<Lang> {
        Lang::ALL
            .into_iter()
            .find(|l| value.trim().eq_ignore_ascii_case(l.code()))
    }

    /// The language of a page: the query's `lang`, else the cookie's, else the best of
    /// `Accept-Language`, else English. A value we do not have is ignored, not an error.
    pub fn choose(
        query: Option<&str>,
        cookie: Option<&str>,
        accept_language: Option<&str>,
    ) -> Lang {
        query
            .and_then(Lang::parse)
            .or_else(|| cookie.and_then(Lang::parse))
            .or_else(|| accept_language.and_then(best_accepted))
            .unwrap_or_default()
    }

    /// The language of this request, and the `Set-Cookie` value to send when its query chose
    /// one (so the choice holds on the next pages, which have no `?lang=`).
    pub fn of_request(uri: &Uri, headers: &HeaderMap) -> (Lang, Option<HeaderValue>) {
        let query = uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(name, _)| name == "lang")
                .map(|(_, value)| value.into_owned())
        });
        let cookie = cookie_value(headers, LANG_COOKIE);
        let accept = headers
            .get_all(header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let lang = Lang::choose(
            query.as_deref(),
            cookie.as_deref(),
            (!accept.is_empty()).then_some(accept.as_str()),
        );
        let set_cookie = query
            .as_deref()
            .and_then(Lang::parse)
            .map(|chosen| chosen.set_cookie());
        (lang, set_cookie)
    }

    /// `cs_lang=tr; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly`: sent back on every
    /// page of ours, never to scripts (no page reads it).
    pub fn set_cookie(self) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age={LANG_COOKIE_MAX_AGE}; SameSite=Lax; HttpOnly",
            self.code()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("cs_lang=en; Path=/"))
    }
}

/// A handler's `lang: Lang` argument: the language the page edge chose for this request
/// (`pages::page_edge` puts it in the extensions), or, behind no such edge, chosen here the
/// same way.
impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Lang, Infallible> {
        Ok(match parts.extensions.get::<Lang>() {
            Some(lang) => *lang,
            None => Lang::of_request(&parts.uri, &parts.headers).0,
        })
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A cookie's value from the request's `Cookie` headers (RFC 6265 §5.4: `name=value` pairs
/// separated by `; `); the first of that name.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
}

/// The language `Accept-Language` prefers among ours (RFC 9110 §12.5.4, basic filtering of RFC
/// 4647 §3.3.1): a range names a language by its primary subtag (`tr-TR` is Turkish); `*` is
/// every language no other range names; `q=0` refuses; the highest weight wins and a tie goes
/// to the range listed first. Malformed entries are skipped. `None` when nothing of ours is
/// acceptable.
fn best_accepted(header: &str) -> Option<Lang> {
    // (weight, position of the range that gave it) per language, and the wildcard's.
    let mut named: [Option<(u16, usize)>; 2] = [None, None];
    let mut wildcard: Option<(u16, usize)> = None;
    for (pos, entry) in header.split(',').enumerate().take(64) {
        let Some((range, q)) = parse_range(entry) else {
            continue;
        };
        if range == "*" {
            wildcard.get_or_insert((q, pos));
            continue;
        }
        let primary = range.split('-').next().unwrap_or_default();
        if let Some(i) = Lang::ALL
            .iter()
            .position(|l| primary.eq_ignore_ascii_case(l.code()))
        {
            // Several ranges of one language (`tr-TR;q=0.9, tr;q=0.5`): the best counts.
            let slot = &mut named[i];
            if slot.is_none_or(|(best, _)| q > best) {
                *slot = Some((q, pos));
            }
        }
    }
    let mut best: Option<(u16, usize, Lang)> = None;
    for (i, lang) in Lang::ALL.into_iter().enumerate() {
        let Some((q, pos)) = named[i].or(wildcard) else {
            continue;
        };
        if q == 0 {
            continue;
        }
        // Higher weight first; among equals, the range listed first.
        if best.is_none_or(|(bq, bpos, _)| q > bq || (q == bq && pos < bpos)) {
            best = Some((q, pos, lang));
        }
    }
    best.map(|(_, _, lang)| lang)
}

/// `tag[;q=weight]` → the tag and its weight in thousandths; `None` for anything else.
fn parse_range(entry: &str) -> Option<(&str, u16)> {
    let mut parts = entry.split(';');
    let range = parts.next()?.trim();
    let well_formed = range == "*"
        || (!range.is_empty()
            && range.len() <= 35
            && range.split('-').all(|sub| {
                (1..=8).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_alphanumeric())
            }));
    if !well_formed {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_weight(value.trim())?;
        }
    }
    Some((range, q))
}

/// An RFC 9110 §12.4.2 weight (`0`, `0.5`, `1.000`) in thousandths.
fn parse_weight(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// `text` with each `{name}` replaced by its value. A placeholder without a value stays as it
/// is (visible in review, never a crash); a `{` that opens no placeholder is kept.
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    pieces(text, values).into_iter().map(|p| p.text).collect()
}

/// A part of a filled string: catalogue text, or a value that went into a placeholder (so a
/// page can set the values apart, e.g. in `<strong>`, whatever order a language puts them in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub value: bool,
}

/// [`fill`], keeping apart what is text and what is a value.
pub fn pieces(text: &str, values: &[(&str, &str)]) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    let mut push = |text: &str, value: bool| {
        if text.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if !value && !last.value => last.text.push_str(text),
            _ => out.push(Piece {
                text: text.to_owned(),
                value,
            }),
        }
    };
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v, close))
        });
        match value {
            Some((v, close)) => {
                push(&rest[..open], false);
                push(v, true);
                rest = &after[close + 1..];
            }
            None => {
                push(&rest[..=open], false);
                rest = after;
            }
        }
    }
    push(rest, false);
    out
}

#[cfg(test)]
mod tests;
