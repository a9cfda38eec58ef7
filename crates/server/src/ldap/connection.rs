//! The operations of one framed LDAP stream (RFC 4511 §4.1.1, §4.2.1): requests are read while
//! others run; searches and the Ping extended operations run beside each other; a bind is the
//! one operation nothing runs beside, and it stays watched while it waits (for a directory
//! today, for a person approving it tomorrow), so Unbind, a closed socket and shutdown reach it. Sockets, TLS and limits on connections are the listener's; meaning is the
//! handler's.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::proto::{LdapMsg, LdapOp, LdapResultCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, FramedParts};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::codec::{Codec, FrameError};
use super::exop;
use super::handler::{LdapHandler, Outcome, Session, notice_of_disconnection, result};

/// Longest one response may take to be written before the connection is dropped.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a new connection may stay silent before its first message.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, how long running operations may take to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(super) type Frames = Framed<Box<dyn Io>, Codec>;

/// What the listener does with the stream once its operations are over.
pub(super) enum Next {
    /// Close the connection (after a clean TLS/TCP shutdown of the writing side).
    Close(Frames),
    /// The stream is gone or unusable: just drop it.
    Drop,
    StartTls(Box<dyn Io>),
}

/// What every connection of a listener shares.
pub(super) struct Context {
    pub handler: Arc<LdapHandler>,
    pub max_operations_per_connection: usize,
    pub idle_timeout: Duration,
    /// Operations in progress on all connections (binds and the others).
    pub operations: Arc<AtomicUsize>,
    /// Searches and extended operations run here, apart from their connection: one whose client
    /// hangs up still finishes (a Deliver OTP whose code went out is stored and audited), and
    /// shutdown waits for them.
    pub tasks: TaskTracker,
}

/// Counts one operation in progress while it lives; it lives inside the operation's future,
/// so a cancelled (dropped) operation is uncounted at once.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type BindFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// The connection's bind: there is at most one.
enum Binding {
    /// RFC 4511 §4.2.1: waiting for the operations sent before it to finish.
    Queued(LdapMsg),
    /// Polled by the connection's own task, beside its socket and the shutdown signal, so
    /// dropping it cancels it: no task is left running for a client that has gone.
    Running(BindFuture),
}

/// What to do after a request or a response.
enum Step {
    Go,
    Close,
    Drop,
    StartTls,
}

/// The operations of one stream in progress.
struct Operations<'a> {
    ctx: &'a Context,
    in_flight: JoinSet<Vec<LdapMsg>>,
    /// What to answer for a spawned operation that fails without answering.
    pending: HashMap<tokio::task::Id, LdapMsg>,
    binding: Option<Binding>,
}

/// Serves one framed stream until it closes, asks for StartTLS or the server shuts down.
pub(super) async fn run(
    ctx: &Context,
    mut framed: Frames,
    session: &mut Session,
    mut first: bool,
    mut shutdown: watch::Receiver<bool>,
) -> Next {
    let mut ops = Operations {
        ctx,
        in_flight: JoinSet::new(),
        pending: HashMap::new(),
        binding: None,
    };
    loop {
        let can_read = ops.in_flight.len() < ctx.max_operations_per_connection;
        let wait = if first {
            FIRST_MESSAGE_TIMEOUT
        } else {
            ctx.idle_timeout
        };
        let bind_running = matches!(ops.binding, Some(Binding::Running(_)));
        let frame = tokio::select! {
            Some(done) = ops.in_flight.join_next_with_id(), if !ops.in_flight.is_empty() => {
                let msgs = ops.finished(done);
                if !send_all(&mut framed, msgs).await {
                    return Next::Drop;
                }
                ops.start_queued_bind(session);
                continue;
            }
            outcome = bind_result(&mut ops.binding), if bind_running => {
                ops.binding = None;
                match apply(outcome, session, &mut framed).await {
                    Step::Go => continue,
                    step => return next(step, framed),
                }
            }
            _ = shutdown.changed() => {
                // A bind may be waiting on a person; shutdown does not wait for it. It gets no
                // answer: the notice says why the connection closes (RFC 4511 §4.4.1).
                ops.binding = None;
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, ops.drain(&mut framed)).await;
                let notice = notice_of_disconnection(LdapResultCode::Unavailable, "the server is shutting down");
                let _ = send_all(&mut framed, vec![notice]).await;
                return Next::Close(framed);
            }
            frame = tokio::time::timeout(wait, framed.next()), if can_read => frame,
        };
        let msg = match frame {
            Err(_) if ops.in_flight.is_empty() && ops.binding.is_none() => {
                tracing::debug!("idle timeout");
                return Next::Close(framed);
            }
            Err(_) => continue,
            Ok(None) => {
                // The client closed its side: a bind has nobody to bind any more and is
                // cancelled; the other operations finish and are answered.
                ops.binding = None;
                ops.drain(&mut framed).await;
                return Next::Close(framed);
            }
            // Reset, broken pipe: nobody left to tell.
            Ok(Some(Err(FrameError::Io(_)))) => return Next::Drop,
            Ok(Some(Err(e))) => {
                // Malformed BER, an oversized message or a message ID out of range: say why,
                // then close this connection only (RFC 4511 §4.1.1.1, §4.4.1).
                tracing::info!(error = %e, "closing an LDAP connection after a protocol error");
                let notice = notice_of_disconnection(LdapResultCode::ProtocolError, &e.to_string());
                let _ = send_all(&mut framed, vec![notice]).await;
                return Next::Close(framed);
            }
            Ok(Some(Ok(msg))) => msg,
        };
        first = false;
        match ops.request(msg, session, &mut framed).await {
            Step::Go => {}
            step => return next(step, framed),
        }
    }
}

/// The listener's next move for a step that ends the stream's operations.
fn next(step: Step, framed: Frames) -> Next {
    match step {
        Step::Go | Step::Close => Next::Close(framed),
        Step::Drop => Next::Drop,
        Step::StartTls => {
            let parts: FramedParts<Box<dyn Io>, Codec> = framed.into_parts();
            if !parts.read_buf.is_empty() {
                // Data after StartTLS before the handshake: not TLS, and never to be read as if
                // it had come through TLS.
                tracing::info!("closing an LDAP connection that sent data after StartTLS");
                return Next::Drop;
            }
            Next::StartTls(parts.io)
        }
    }
}

/// The result of the running bind; never ready when there is none.
async fn bind_result(binding: &mut Option<Binding>) -> Outcome {
    match binding {
        Some(Binding::Running(future)) => future.as_mut().await,
        _ => std::future::pending().await,
    }
}

/// Sends what the handler answered and applies what it asked of the connection.
async fn apply(outcome: Outcome, session: &mut Session, framed: &mut Frames) -> Step {
    let sent = match outcome {
        Outcome::Respond(msgs) => send_all(framed, msgs).await,
        Outcome::Bind { bound, response } => {
            session.bound = bound;
            send_all(framed, vec![response]).await
        }
        Outcome::StartTls(response) => {
            return if send_all(framed, vec![response]).await {
                Step::StartTls
            } else {
                Step::Drop
            };
        }
        Outcome::Disconnect => return Step::Close,
        Outcome::Ignore => true,
    };
    if sent { Step::Go } else { Step::Drop }
}

impl Operations<'_> {
    async fn request(&mut self, msg: LdapMsg, session: &mut Session, framed: &mut Frames) -> Step {
        if self.binding.is_some()
            && !matches!(msg.op, LdapOp::UnbindRequest | LdapOp::AbandonRequest(_))
        {
            // RFC 4511 §4.2.1: clients must not send operations while a bind is in progress.
            // Holding them would let one connection queue without bound; they are refused,
            // and the bind carries on. (Unbind cancels the bind; Abandon is ignored, as a bind
            // cannot be abandoned, RFC 4511 §4.11.)
            let res = result(
                LdapResultCode::OperationsError,
                "a bind is in progress on this connection",
            );
            let refusal = self.ctx.handler.refusal_for(&msg.op, msg.msgid, res);
            return apply(Outcome::Respond(vec![refusal]), session, framed).await;
        }
        if matches!(msg.op, LdapOp::BindRequest(_)) {
            self.binding = Some(Binding::Queued(msg));
            self.start_queued_bind(session);
            return Step::Go;
        }
        session.outstanding = self.in_flight.len();
        if runs_alone(&msg.op) {
            let span = op_span(&msg);
            let outcome = self.ctx.handler.handle(msg, session).instrument(span).await;
            return apply(outcome, session, framed).await;
        }
        let failure = self.ctx.handler.refusal_for(
            &msg.op,
            msg.msgid,
            result(
                LdapResultCode::Other,
                "the operation failed; it has been logged",
            ),
        );
        let (handler, snapshot, span) = (self.ctx.handler.clone(), session.clone(), op_span(&msg));
        let counted = Counted::new(&self.ctx.operations);
        let detached = self.ctx.tasks.spawn(
            async move {
                let _counted = counted;
                match handler.handle(msg, &snapshot).await {
                    Outcome::Respond(msgs) => msgs,
                    _ => Vec::new(),
                }
            }
            .instrument(span),
        );
        // The connection waits for the answer; dropping this wait (the client went away) leaves
        // the operation running to its end.
        let failed = failure.clone();
        let task = self
            .in_flight
            .spawn(async move { detached.await.unwrap_or_else(|_| vec![failed]) });
        self.pending.insert(task.id(), failure);
        Step::Go
    }

    /// Starts the queued bind once the operations before it are done (RFC 4511 §4.2.1), with
    /// the identity they ran under.
    fn start_queued_bind(&mut self, session: &mut Session) {
        if !self.in_flight.is_empty() || !matches!(self.binding, Some(Binding::Queued(_))) {
            return;
        }
        let Some(Binding::Queued(msg)) = self.binding.take() else {
            return;
        };
        session.outstanding = 0;
        let (handler, snapshot, span) = (self.ctx.handler.clone(), session.clone(), op_span(&msg));
        let counted = Counted::new(&self.ctx.operations);
        let future = Box::pin(
            async move {
                let _counted = counted;
                handler.handle(msg, &snapshot).await
            }
            .instrument(span),
        );
        self.binding = Some(Binding::Running(future));
    }

    /// Waits for the spawned operations and sends their answers.
    async fn drain(&mut self, framed: &mut Frames) {
        while let Some(done) = self.in_flight.join_next_with_id().await {
            let msgs = self.finished(done);
            if !send_all(framed, msgs).await {
                break;
            }
        }
    }

    /// The responses of a finished operation; `other` (80) if it failed without answering.
    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, Vec<LdapMsg>), tokio::task::JoinError>,
    ) -> Vec<LdapMsg> {
        match done {
            Ok((id, msgs)) => {
                self.pending.remove(&id);
                msgs
            }
            Err(e) => {
                tracing::error!(error = %e, "an LDAP operation failed");
                self.pending.remove(&e.id()).into_iter().collect()
            }
        }
    }
}

/// Requests that read or change the connection's state are handled in order, on the
/// connection's own task; the others run beside each other. (Binds are apart: see
/// [`Binding`].)
fn runs_alone(op: &LdapOp) -> bool {
    match op {
        LdapOp::UnbindRequest | LdapOp::AbandonRequest(_) => true,
        LdapOp::ExtendedRequest(r) => r.name == exop::START_TLS || r.name == exop::WHO_AM_I,
        _ => false,
    }
}

fn op_span(msg: &LdapMsg) -> tracing::Span {
    let op = match &msg.op {
        LdapOp::BindRequest(_) => "bind",
        LdapOp::UnbindRequest => "unbind",
        LdapOp::SearchRequest(_) => "search",
        LdapOp::ExtendedRequest(r) => match r.name.as_str() {
            exop::DELIVER_OTP_REQUEST => "deliver-otp",
            exop::GET_SUPPORTED_REQUEST => "get-supported-otp-mechanisms",
            exop::WHO_AM_I => "whoami",
            exop::START_TLS => "starttls",
            _ => "extended",
        },
        LdapOp::AbandonRequest(_) => "abandon",
        _ => "other",
    };
    tracing::info_span!("ldap_op", msgid = msg.msgid, op)
}

async fn send_all(framed: &mut Frames, msgs: Vec<LdapMsg>) -> bool {
    for m in msgs {
        match tokio::time::timeout(WRITE_TIMEOUT, framed.send(m)).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
    }
    true
}
