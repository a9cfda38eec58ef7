//! A minimal LDAP client on ldap3_proto's codec, enough for binds, searches and extended
//! operations.

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::proto::{
    LdapDerefAliases, LdapFilter, LdapMsg, LdapOp, LdapResultCode, LdapSearchRequest,
    LdapSearchScope,
};
use tokio_util::codec::Framed;

/// A minimal LDAP client on ldap3_proto's codec.
pub struct LdapClient {
    pub framed: Framed<tokio::net::TcpStream, LdapCodec>,
    next_id: i32,
}

impl LdapClient {
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            framed: Framed::new(stream, LdapCodec::default()),
            next_id: 1,
        })
    }

    /// Searches; returns the number of entries (the result must be success).
    pub async fn search(
        &mut self,
        base: String,
        scope: LdapSearchScope,
        filter: LdapFilter,
    ) -> anyhow::Result<usize> {
        self.next_id += 1;
        let req = LdapSearchRequest {
            base,
            scope,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter,
            attrs: vec![
                "mail".into(),
                "mobile".into(),
                "cn".into(),
                "manager".into(),
            ],
        };
        self.framed
            .send(LdapMsg::new(self.next_id, LdapOp::SearchRequest(req)))
            .await?;
        let mut n = 0;
        loop {
            let msg = self
                .framed
                .next()
                .await
                .ok_or_else(|| anyhow!("connection closed"))??;
            match msg.op {
                LdapOp::SearchResultEntry(_) => n += 1,
                LdapOp::SearchResultDone(r) if r.code == LdapResultCode::Success => return Ok(n),
                other => bail!("search: {other:?}"),
            }
        }
    }

    /// Sends `op` and returns the result code of its response.
    pub async fn ask(&mut self, op: LdapOp) -> anyhow::Result<LdapResultCode> {
        self.next_id += 1;
        self.framed.send(LdapMsg::new(self.next_id, op)).await?;
        let msg = self
            .framed
            .next()
            .await
            .ok_or_else(|| anyhow!("connection closed"))??;
        Ok(match msg.op {
            LdapOp::BindResponse(r) => r.res.code,
            LdapOp::ExtendedResponse(r) => r.res.code,
            other => bail!("unexpected {other:?}"),
        })
    }
}
