//! The language choice, the placeholders, and the two catalogues kept in step.

use std::collections::BTreeSet;

use axum::http::{HeaderMap, HeaderValue, Uri, header};

use super::*;

fn accept(h: &str) -> Lang {
    Lang::choose(None, None, Some(h))
}

#[test]
fn the_query_beats_the_cookie_which_beats_accept_language() {
    assert_eq!(Lang::choose(Some("tr"), Some("en"), Some("en")), Lang::Tr);
    assert_eq!(Lang::choose(Some("en"), Some("tr"), Some("tr")), Lang::En);
    assert_eq!(Lang::choose(None, Some("tr"), Some("en")), Lang::Tr);
    assert_eq!(Lang::choose(None, None, Some("tr")), Lang::Tr);
    assert_eq!(Lang::choose(None, None, None), Lang::En);
    // Values we do not have fall through to the next source.
    assert_eq!(Lang::choose(Some("de"), Some("tr"), None), Lang::Tr);
    assert_eq!(Lang::choose(Some("TR"), None, None), Lang::Tr);
    assert_eq!(Lang::choose(Some(""), Some("xx"), Some("tr-TR")), Lang::Tr);
    assert_eq!(Lang::choose(Some("tr-TR"), None, None), Lang::En);
}

#[test]
fn accept_language_weights_regions_and_wildcards_are_honoured() {
    for (header, want) in [
        ("tr-TR,tr;q=0.9,en-US;q=0.8,en;q=0.7", Lang::Tr),
        ("en-US,en;q=0.9,tr;q=0.8", Lang::En),
        ("TR", Lang::Tr),
        ("de-DE, tr;q=0.5", Lang::Tr),
        ("en;q=0.3, tr;q=0.7", Lang::Tr),
        // Nothing of ours: the default.
        ("de, fr;q=0.9", Lang::En),
        ("*", Lang::En),
        // q=0 is "not this one"; `*` then stands for the other.
        ("en;q=0, *;q=0.1", Lang::Tr),
        ("tr;q=0, *", Lang::En),
        ("tr;q=0", Lang::En),
        ("tr-TR;q=0", Lang::En),
        // The best range of a language counts; equal weights go to the first listed.
        ("tr-TR;q=0.1, en;q=0.5, tr;q=0.9", Lang::Tr),
        ("en;q=0.5, tr;q=0.5", Lang::En),
        ("tr;q=0.5, en;q=0.5", Lang::Tr),
        ("tr;q=0.500, en;q=0.5", Lang::Tr),
        // Garbage is skipped, what is well-formed still counts.
        ("tr;q=abc, en;q=0.1", Lang::En),
        ("tr;q=1.5, en;q=0.1", Lang::En),
        ("tr;q=0.1234, en;q=0.1", Lang::En),
        ("t r, tr;q=0.2", Lang::Tr),
        ("<script>,;;;,=,tr", Lang::Tr),
        ("trx, turkish", Lang::En),
        ("", Lang::En),
        (",,,", Lang::En),
        ("en-GB-oxendict;q=0.9,tr;q=1", Lang::Tr),
    ] {
        assert_eq!(accept(header), want, "Accept-Language: {header}");
    }
}

#[test]
fn the_request_gives_the_language_and_the_cookie_to_set() {
    let uri: Uri = "/flow/ab12?lang=tr".parse().unwrap();
    let (lang, cookie) = Lang::of_request(&uri, &HeaderMap::new());
    assert_eq!(lang, Lang::Tr);
    assert_eq!(
        cookie.unwrap(),
        "cs_lang=tr; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly"
    );

    let mut h = HeaderMap::new();
    h.append(header::COOKIE, HeaderValue::from_static("a=1; cs_lang=tr"));
    h.append(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en"));
    let plain: Uri = "/approve/x".parse().unwrap();
    assert_eq!(Lang::of_request(&plain, &h), (Lang::Tr, None));

    // A value we do not have sets nothing and chooses nothing.
    let odd: Uri = "/approve/x?lang=de".parse().unwrap();
    assert_eq!(Lang::of_request(&odd, &h), (Lang::Tr, None));

    // Accept-Language split over several header lines counts as one list.
    let mut h = HeaderMap::new();
    h.append(header::ACCEPT_LANGUAGE, HeaderValue::from_static("de"));
    h.append(
        header::ACCEPT_LANGUAGE,
        HeaderValue::from_static("tr;q=0.5"),
    );
    assert_eq!(Lang::of_request(&plain, &h), (Lang::Tr, None));
    let back: Uri = "/approve/x?x=1&lang=en".parse().unwrap();
    let (lang, cookie) = Lang::of_request(&back, &h);
    assert_eq!(lang, Lang::En);
    assert!(cookie.unwrap().to_str().unwrap().starts_with("cs_lang=en;"));
}

#[test]
fn placeholders_are_filled_and_values_kept_apart() {
    let values = [("who", "Eve"), ("application", "vpn")];
    assert_eq!(fill("{who} to {application}.", &values), "Eve to vpn.");
    // Unknown names and lone braces stay as they are; a value is not filled again.
    assert_eq!(fill("{x} {who", &values), "{x} {who");
    assert_eq!(fill("{who}", &[("who", "{application}")]), "{application}");
    assert_eq!(fill("", &values), "");
    assert_eq!(
        pieces("{who}, {application} uygulamasında", &values),
        vec![
            Piece {
                text: "Eve".into(),
                value: true
            },
            Piece {
                text: ", ".into(),
                value: false
            },
            Piece {
                text: "vpn".into(),
                value: true
            },
            Piece {
                text: " uygulamasında".into(),
                value: false
            },
        ]
    );
}

/// `field → value` of a catalogue, read from its pretty `Debug` (one field a line).
fn fields(c: &Catalogue) -> Vec<(String, String)> {
    format!("{c:#?}")
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim_end_matches(',').to_owned()))
        .collect()
}

fn placeholders(text: &str) -> BTreeSet<String> {
    text.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[test]
fn both_catalogues_have_every_string_with_the_same_placeholders() {
    let en = fields(Lang::En.catalogue());
    let tr = fields(Lang::Tr.catalogue());
    assert!(en.len() > 90, "{}", en.len());
    assert_eq!(en.len(), tr.len());
    for ((name, en_text), (tr_name, tr_text)) in en.iter().zip(&tr) {
        assert_eq!(name, tr_name);
        assert!(en_text.len() > 2 && tr_text.len() > 2, "{name} is empty");
        assert_eq!(
            placeholders(en_text),
            placeholders(tr_text),
            "{name}: {en_text} / {tr_text}"
        );
        assert!(!en_text.contains("  ") && !tr_text.contains("  "), "{name}");
    }
}

#[test]
fn the_turkish_catalogue_reads_as_turkish() {
    let t = Lang::Tr.catalogue();
    assert_eq!(t.signin_button, "Oturum aç");
    assert_eq!(t.waiting_title, "Onay bekleniyor");
    assert_eq!(t.waiting_heading, "Yöneticinizin onayı bekleniyor");
    assert_eq!((t.approve_button, t.reject_button), ("Onayla", "Reddet"));
    assert_eq!(t.outcome_expired_title, "Süre doldu");
    assert_eq!(t.cancel_button, "İptal et");
    assert_eq!(t.back_link, "Uygulamaya dön");
    // Dotted capital İ, never an ASCII I with a dot lost.
    assert!(t.approve_asked_at.starts_with('İ'));
    assert_eq!(Lang::Tr.own_name(), "Türkçe");
}
