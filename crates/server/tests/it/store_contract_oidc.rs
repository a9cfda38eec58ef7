//! The store contract, continued for the OpenID Connect provider, on the same [`Backend`] as
//! `store_contract`: a code is redeemed by exactly one of concurrent clients, a flow issues one
//! code, what is kept survives a restart, a replay can revoke the tokens a code gave, the
//! signing keys are kept in order with the previous one retired, and pruning removes only what
//! is past use.

use std::sync::Arc;

use countersign_core::model::Timestamp;
use countersign_core::oidc::{AccessGrant, Authentication, CodeGrant, Subject};
use countersign_core::ports::StoreError;
use countersign_core::ports::oidc::{Redeemed, SigningKeyRecord};

use crate::store_contract::{Backend, fresh};

fn grant(flow: &str, expires: i64) -> CodeGrant {
    CodeGrant {
        client: "wiki".into(),
        redirect_uri: "https://wiki.example.org/cb".into(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        nonce: Some("n-1".into()),
        scope: vec!["openid".into(), "email".into()],
        authentication: Authentication {
            subject: Subject {
                sub: "0123456789abcdef0123456789abcdef01234567".into(),
                username: "ayşe".into(),
                name: Some("Ayşe Yılmaz".into()),
                email: None,
            },
            auth_time: Timestamp(1_000),
            amr: vec!["pwd".into(), "mca".into()],
            acr: "urn:countersign:acr:approval".into(),
        },
        expires_at: Timestamp(expires),
        flow: flow.into(),
        flow_expires_at: Timestamp(expires),
    }
}

fn token(code_hash: &[u8], expires: i64) -> AccessGrant {
    AccessGrant {
        client: "wiki".into(),
        code_hash: code_hash.to_vec(),
        subject: grant("f", 0).authentication.subject,
        scope: vec!["openid".into()],
        expires_at: Timestamp(expires),
    }
}

fn key(kid: &str, at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        created_at: Timestamp(at),
        retired_at: None,
        sealed: format!("sealed {kid}").into_bytes(),
    }
}

async fn oidc_a_code_is_redeemed_once_and_survives_a_restart<B: Backend>(b: &B) {
    let (db, s) = fresh(b).await;
    let g = grant("flow-1", 60_000);
    s.put_code(b"code-1", &g).await.unwrap();
    let again = b.open(&db).await;
    assert_eq!(
        again.redeem_code(b"code-1", "spa").await.unwrap(),
        Redeemed::OtherClient,
        "another client's try leaves it as it was"
    );
    assert_eq!(
        again.redeem_code(b"code-1", "wiki").await.unwrap(),
        Redeemed::Fresh(g.clone())
    );
    assert_eq!(
        s.redeem_code(b"code-1", "wiki").await.unwrap(),
        Redeemed::Replayed(g)
    );
    assert_eq!(
        s.redeem_code(b"code-2", "wiki").await.unwrap(),
        Redeemed::Unknown
    );
}

async fn oidc_one_redeemed_code_per_flow<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    s.put_code(b"code-1", &grant("flow-1", 60_000))
        .await
        .unwrap();
    // Unredeemed: a second code of the flow replaces it.
    s.put_code(b"code-2", &grant("flow-1", 60_000))
        .await
        .unwrap();
    assert_eq!(
        s.redeem_code(b"code-1", "wiki").await.unwrap(),
        Redeemed::Unknown
    );
    assert!(matches!(
        s.redeem_code(b"code-2", "wiki").await.unwrap(),
        Redeemed::Fresh(_)
    ));
    // Redeemed: the flow issues no more, and its code stays as it was.
    let third = s.put_code(b"code-3", &grant("flow-1", 60_000)).await;
    assert!(matches!(third, Err(StoreError::Conflict(_))), "{third:?}");
    assert!(matches!(
        s.redeem_code(b"code-2", "wiki").await.unwrap(),
        Redeemed::Replayed(_)
    ));
}

async fn oidc_a_token_written_after_a_replay_is_born_revoked<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    s.put_code(b"code-1", &grant("flow-1", 60_000))
        .await
        .unwrap();
    s.redeem_code(b"code-1", "wiki").await.unwrap();
    s.redeem_code(b"code-1", "wiki").await.unwrap();
    s.put_access_token(b"late", &token(b"code-1", 90_000))
        .await
        .unwrap();
    assert_eq!(s.access_token(b"late").await.unwrap(), None);
}

async fn oidc_a_code_is_kept_while_its_flow_could_come_back<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let mut g = grant("flow-1", 1_000);
    g.flow_expires_at = Timestamp(9_000);
    s.put_code(b"code-1", &g).await.unwrap();
    s.redeem_code(b"code-1", "wiki").await.unwrap();
    s.prune_oidc(Timestamp(5_000)).await.unwrap();
    let again = s.put_code(b"code-2", &grant("flow-1", 60_000)).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "still done: {again:?}"
    );
    s.prune_oidc(Timestamp(10_000)).await.unwrap();
    assert_eq!(
        s.redeem_code(b"code-1", "wiki").await.unwrap(),
        Redeemed::Unknown
    );
}

async fn oidc_concurrent_redemptions_have_exactly_one_winner<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    s.put_code(b"code-1", &grant("flow-1", 60_000))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.redeem_code(b"code-1", "wiki").await.unwrap()
        }));
    }
    let mut fresh_count = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Redeemed::Fresh(_)) {
            fresh_count += 1;
        }
    }
    assert_eq!(fresh_count, 1);
}

async fn oidc_tokens_are_read_and_revoked_by_their_code<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let (t1, t2) = (token(b"code-1", 9_000), token(b"code-2", 9_000));
    s.put_access_token(b"token-1", &t1).await.unwrap();
    s.put_access_token(b"token-2", &t2).await.unwrap();
    assert_eq!(s.access_token(b"token-1").await.unwrap(), Some(t1));
    assert_eq!(s.revoke_code_tokens(b"code-1").await.unwrap(), 1);
    assert_eq!(s.revoke_code_tokens(b"code-1").await.unwrap(), 0);
    assert_eq!(s.access_token(b"token-1").await.unwrap(), None);
    assert_eq!(
        s.access_token(b"token-2").await.unwrap(),
        Some(t2),
        "others untouched"
    );
}

async fn oidc_a_new_signing_key_retires_the_previous_one<B: Backend>(b: &B) {
    let (db, s) = fresh(b).await;
    assert!(s.signing_keys().await.unwrap().is_empty());
    s.add_signing_key(&key("k1", 1_000)).await.unwrap();
    s.add_signing_key(&key("k2", 5_000)).await.unwrap();
    let keys = b.open(&db).await.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].kid.as_str(), keys[0].retired_at),
        ("k1", Some(Timestamp(5_000)))
    );
    assert_eq!((keys[1].kid.as_str(), keys[1].retired_at), ("k2", None));
    assert_eq!(keys[1].sealed, b"sealed k2");
}

async fn oidc_pruning_removes_only_what_is_past_use<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    s.put_code(b"old", &grant("f-old", 1_000)).await.unwrap();
    s.put_code(b"new", &grant("f-new", 9_000)).await.unwrap();
    s.put_access_token(b"t-old", &token(b"old", 1_000))
        .await
        .unwrap();
    s.put_access_token(b"t-new", &token(b"new", 9_000))
        .await
        .unwrap();
    s.add_signing_key(&key("k1", 1_000)).await.unwrap();
    s.add_signing_key(&key("k2", 2_000)).await.unwrap();
    s.add_signing_key(&key("k3", 8_000)).await.unwrap();
    s.prune_oidc(Timestamp(5_000)).await.unwrap();
    assert_eq!(
        s.redeem_code(b"old", "wiki").await.unwrap(),
        Redeemed::Unknown
    );
    assert!(matches!(
        s.redeem_code(b"new", "wiki").await.unwrap(),
        Redeemed::Fresh(_)
    ));
    assert_eq!(s.access_token(b"t-old").await.unwrap(), None);
    assert!(s.access_token(b"t-new").await.unwrap().is_some());
    let kids: Vec<String> = s
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    // k1 retired at 2 000 (gone), k2 at 8 000 (kept), k3 signs.
    assert_eq!(kids, ["k2", "k3"]);
}

/// One `#[tokio::test]` per check for a backend, as `contract!` in `store_contract`.
macro_rules! oidc_contract {
    ($backend:expr) => {
        oidc_contract!($backend;
            oidc_a_code_is_redeemed_once_and_survives_a_restart,
            oidc_one_redeemed_code_per_flow,
            oidc_a_token_written_after_a_replay_is_born_revoked,
            oidc_a_code_is_kept_while_its_flow_could_come_back,
            oidc_concurrent_redemptions_have_exactly_one_winner,
            oidc_tokens_are_read_and_revoked_by_their_code,
            oidc_a_new_signing_key_retires_the_previous_one,
            oidc_pruning_removes_only_what_is_past_use,
        );
    };
    ($backend:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                super::$check(&$backend).await;
            }
        )*
    };
}

mod sqlite {
    use crate::store_contract::sqlite::Sqlite;

    oidc_contract!(Sqlite);
}
