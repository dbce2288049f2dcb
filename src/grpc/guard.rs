//! What every call goes through before its handler, as one tower layer around the services:
//!
//! 1. a request id, made here (a client's own `x-request-id` is logged beside it, never
//!    trusted as the audit trail's), returned in the answer's metadata and carried by the
//!    call's tracing span;
//! 2. load shedding: past the limit of calls in flight, UNAVAILABLE at once; past a sender's
//!    own share of them, RESOURCE_EXHAUSTED, so one sender cannot take every slot;
//! 3. authentication (bearer API key, or mTLS client certificate), except for the health
//!    service; the authenticated [`Caller`] is handed to the handler in the request's
//!    extensions;
//! 4. rate limits keyed by the authenticated sender (never the peer address): calls per
//!    second with a burst, and request bytes per second;
//! 5. deadlines: one for the whole call, an idle timeout on the request stream, and the same
//!    idle timeout on a streamed answer: a client that stops taking an export's pieces is cut
//!    off, its place in the budget freed and the export's producer stopped;
//! 6. metrics: calls and latencies by RPC and status code, recorded when the answer ends.
//!
//! Authorization is not here: it is the use case's, so that it is audited with the action.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::Status;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::app::{App, AppError, AuthError, Caller, Credentials};
use crate::domain::access::Action;

/// The metadata key of the request id.
pub const REQUEST_ID_METADATA: &str = "x-request-id";

/// The RPCs whose request is streamed in (a file, or a whole payroll run): they get the
/// upload deadline.
const UPLOAD_RPCS: [&str; 4] = [
    "RemittanceService/SubmitRemittance",
    "RegistryService/ImportRegistry",
    "PaymentService/ImportReturns",
    "WithholdingService/CalculatePayrollWithholding",
];

/// The RPCs whose answer is streamed out: a client that stops reading one is cut off after
/// the idle stream timeout (see [`Watched`]).
const STREAMED_RPCS: [&str; 7] = [
    "ExportService/ExportAllocations",
    "ExportService/ExportBalances",
    "ExportService/ExportSuspense",
    "ExportService/ExportAudit",
    "ExportService/ExportReport",
    "RemittanceService/StreamRemittanceLines",
    "WithholdingService/CalculatePayrollWithholding",
];

/// Rate limits of one sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSettings {
    pub requests_per_second: NonZeroU32,
    pub request_burst: NonZeroU32,
    pub bytes_per_second: NonZeroU32,
    pub byte_burst: NonZeroU32,
}

/// The guard's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardSettings {
    pub rate: RateSettings,
    /// Calls in flight at once, across every connection; past it, calls are shed.
    pub max_concurrent_calls: usize,
    /// Calls in flight at once from one sender (held streams included).
    pub max_concurrent_calls_per_sender: usize,
    /// The longest a call may take (a client's shorter `grpc-timeout` wins).
    pub call_deadline: Duration,
    /// The longest an upload (a file streamed in) may take.
    pub upload_deadline: Duration,
    /// The longest the server waits for the next piece of a request stream, and the longest
    /// a streamed answer waits for its client to take the next piece.
    pub idle_stream_timeout: Duration,
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("a non-zero constant")
}

impl GuardSettings {
    /// Generous for any honest client, tight enough that one cannot starve the others.
    pub const STANDARD: GuardSettings = GuardSettings {
        rate: RateSettings {
            requests_per_second: NonZeroU32::new(200).unwrap(),
            request_burst: NonZeroU32::new(400).unwrap(),
            bytes_per_second: NonZeroU32::new(64 << 20).unwrap(),
            // A whole file of the largest size allowed, from a rested bucket.
            byte_burst: NonZeroU32::new(u32::MAX).unwrap(),
        },
        max_concurrent_calls: 256,
        max_concurrent_calls_per_sender: 32,
        call_deadline: Duration::from_secs(120),
        upload_deadline: Duration::from_secs(3600),
        idle_stream_timeout: Duration::from_secs(60),
    };
}

/// The shared state of the guard: limiters and the concurrency budget.
struct GuardState {
    app: App,
    settings: GuardSettings,
    calls: DefaultKeyedRateLimiter<String>,
    bytes: Arc<DefaultKeyedRateLimiter<String>>,
    /// Refusals of unauthenticated calls are audited up to this rate, so that a flood of
    /// bad credentials cannot flood the audit table (they are all counted in the metrics).
    unauthenticated_audits: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
    /// Calls in flight per sender; a sender leaves the map when its last call ends.
    per_sender: Arc<Mutex<HashMap<String, usize>>>,
}

/// A sender's place among its calls in flight, given back when the answer ends.
struct SenderSlot {
    per_sender: Arc<Mutex<HashMap<String, usize>>>,
    sender: String,
}

impl SenderSlot {
    fn take(per_sender: &Arc<Mutex<HashMap<String, usize>>>, sender: &str, limit: usize) -> Option<SenderSlot> {
        let mut counts = per_sender.lock().expect("sender slots lock");
        let count = counts.entry(sender.to_owned()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(SenderSlot { per_sender: per_sender.clone(), sender: sender.to_owned() })
    }
}

impl Drop for SenderSlot {
    fn drop(&mut self) {
        let mut counts = self.per_sender.lock().expect("sender slots lock");
        if let Some(count) = counts.get_mut(&self.sender) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.sender);
            }
        }
    }
}

/// What an admitted call holds until its answer ends.
struct Admission {
    _permit: OwnedSemaphorePermit,
    _slot: Option<SenderSlot>,
}

/// The tower layer; see the module's documentation.
#[derive(Clone)]
pub struct GuardLayer {
    state: Arc<GuardState>,
}

impl GuardLayer {
    pub fn new(app: App, settings: GuardSettings) -> GuardLayer {
        let rate = settings.rate;
        let state = GuardState {
            calls: RateLimiter::keyed(Quota::per_second(rate.requests_per_second).allow_burst(rate.request_burst)),
            bytes: Arc::new(RateLimiter::keyed(Quota::per_second(rate.bytes_per_second).allow_burst(rate.byte_burst))),
            unauthenticated_audits: RateLimiter::direct(Quota::per_second(non_zero(20)).allow_burst(non_zero(100))),
            in_flight: Arc::new(Semaphore::new(settings.max_concurrent_calls)),
            per_sender: Arc::new(Mutex::new(HashMap::new())),
            app,
            settings,
        };
        GuardLayer { state: Arc::new(state) }
    }

    /// Forgets senders idle long enough that their buckets are full again: the limiters'
    /// state stays as small as the set of recently active senders.
    pub fn forget_idle_senders(&self) {
        self.state.calls.retain_recent();
        self.state.calls.shrink_to_fit();
        self.state.bytes.retain_recent();
        self.state.bytes.shrink_to_fit();
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    state: Arc<GuardState>,
}

/// Which action each RPC performs: the transport's half of the access table.
const RPCS: [(&str, Action); 45] = [
    ("RegistryService/ImportRegistry", Action::ImportRegistry),
    ("CollectionService/AddCollection", Action::AddCollection),
    ("DistributionService/RunDistribution", Action::RunDistribution),
    ("RemittanceService/SubmitRemittance", Action::SubmitRemittance),
    ("RemittanceService/GetRemittance", Action::GetRemittance),
    ("RemittanceService/StreamRemittanceLines", Action::StreamRemittanceLines),
    ("RemittanceService/ListRemittances", Action::ListRemittances),
    ("PaymentService/RegisterPayer", Action::RegisterPayer),
    ("PaymentService/GetPayer", Action::GetPayer),
    ("PaymentService/AddBankAccount", Action::AddBankAccount),
    ("PaymentService/ReplaceBankAccount", Action::ReplaceBankAccount),
    ("PaymentService/ConfirmBankAccount", Action::ConfirmBankAccount),
    ("PaymentService/ReturnPrenote", Action::ReturnPrenote),
    ("PaymentService/SubmitPayment", Action::SubmitPayment),
    ("PaymentService/RecordReturn", Action::RecordReturn),
    ("PaymentService/ImportReturns", Action::ImportReturns),
    ("ExportService/ExportAllocations", Action::ExportAllocations),
    ("ExportService/ExportBalances", Action::ExportBalances),
    ("ExportService/ExportSuspense", Action::ExportSuspense),
    ("ExportService/ExportAudit", Action::ExportAudit),
    ("AdminService/CreateApiKey", Action::CreateApiKey),
    ("AdminService/ListApiKeys", Action::ListApiKeys),
    ("AdminService/RevokeApiKey", Action::RevokeApiKey),
    ("WithholdingService/CalculateWithholding", Action::CalculateWithholding),
    ("WithholdingService/CalculatePayrollWithholding", Action::CalculatePayrollWithholding),
    ("SuspenseService/ListSuspenseItems", Action::ListSuspenseItems),
    ("SuspenseService/GetSuspenseItem", Action::GetSuspenseItem),
    ("SuspenseService/ResolveSuspenseItem", Action::ResolveSuspenseItem),
    ("SuspenseService/ReturnSuspenseItem", Action::ReturnSuspenseItem),
    ("TerminationService/ListTerminationNotices", Action::ListTerminationNotices),
    ("TerminationService/MarkTerminationNoticeHandled", Action::MarkTerminationNoticeHandled),
    ("OrderService/RequestOrderReview", Action::RequestOrderReview),
    ("OrderService/ListOrderReviews", Action::ListOrderReviews),
    ("ExportService/ExportReport", Action::ExportReport),
    ("OrderService/ListProjectedEnds", Action::ListProjectedEnds),
    ("OrderService/SearchObligors", Action::SearchObligors),
    ("OrderService/RecordOrderEnd", Action::RecordOrderEnd),
    ("OrderService/WithdrawOrderEnd", Action::WithdrawOrderEnd),
    ("ExplainService/ExplainCollection", Action::ExplainCollection),
    ("ExplainService/ExplainOrder", Action::ExplainOrder),
    ("CreditService/ListUnappliedCredit", Action::ListUnappliedCredit),
    ("CreditService/RefundCredit", Action::RefundCredit),
    ("CreditService/ApplyCredit", Action::ApplyCredit),
    ("LedgerService/VerifyLedger", Action::VerifyLedger),
    ("ServerReflection/ServerReflectionInfo", Action::Reflection),
];

/// The action an RPC named `Service/Method` performs.
pub fn action_of(rpc: &str) -> Option<Action> {
    RPCS.iter().find(|(name, _)| *name == rpc).map(|(_, action)| *action)
}

/// `/fspc.gateway.v1.PaymentService/SubmitPayment` → `PaymentService/SubmitPayment`; the
/// health and reflection services likewise; anything else is `unknown` (a bounded label).
fn rpc_name(path: &str) -> &'static str {
    static KNOWN: std::sync::OnceLock<HashMap<&'static str, &'static str>> = std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut known = HashMap::new();
        for (name, _) in RPCS {
            known.insert(name, name);
        }
        known.insert("Health/Check", "Health/Check");
        known.insert("Health/Watch", "Health/Watch");
        known
    });
    let method = path.trim_start_matches('/');
    let short = method.rsplit_once('/').map(|(service, rpc)| (service.rsplit('.').next().unwrap_or(service), rpc));
    match short {
        Some((service, rpc)) => known.get(format!("{service}/{rpc}").as_str()).copied().unwrap_or("unknown"),
        None => "unknown",
    }
}

fn is_health(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// A new request id: 96 random bits, as hex.
fn new_request_id() -> String {
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).expect("the operating system provides random bytes");
    hex::encode(random)
}

/// The client's own request id, for the log, when it is short and plain.
fn client_request_id<B>(request: &Request<B>) -> Option<String> {
    request
        .headers()
        .get(REQUEST_ID_METADATA)
        .and_then(|v| v.to_str().ok())
        .filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .map(str::to_owned)
}

fn bearer_token<B>(request: &Request<B>) -> Result<Option<&str>, AuthError> {
    let Some(value) = request.headers().get(http::header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(AuthError::Malformed),
    }
}

fn client_certificate<B>(request: &Request<B>) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let info = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certificates = info.peer_certs()?;
    certificates.first().map(|der| crate::app::access::certificate_fingerprint(der.as_ref()))
}

/// What a request presented, read before anything is awaited (a request is not `Sync`).
struct PresentedCredentials {
    token: Result<Option<String>, AuthError>,
    certificate: Option<String>,
}

impl PresentedCredentials {
    fn of<B>(request: &Request<B>) -> PresentedCredentials {
        PresentedCredentials { token: bearer_token(request).map(|t| t.map(str::to_owned)), certificate: client_certificate(request) }
    }
}

/// An error answered without calling the service (trailers-only).
fn refusal(error: AppError) -> Response<Body> {
    Status::from(error).into_http()
}

impl GuardState {
    /// Authenticates and rate-limits a call; the caller, or the answer that refuses it.
    async fn admit(
        &self,
        credentials: PresentedCredentials,
        request_id: &str,
        rpc: &'static str,
    ) -> Result<(Caller, SenderSlot), Response<Body>> {
        let principal = match &credentials.token {
            Ok(token) => {
                let presented = Credentials { token: token.as_deref(), client_cert_sha256: credentials.certificate.as_deref() };
                self.app.authenticate(presented).await
            }
            Err(error) => Err(*error),
        };
        let principal = match principal {
            Ok(principal) => principal,
            Err(reason) => {
                if self.unauthenticated_audits.check().is_ok() {
                    // Audited under the action's name when the RPC is one of ours.
                    self.app.audit_unauthenticated(request_id, action_of(rpc).map_or(rpc, Action::name)).await;
                }
                return Err(refusal(AppError::Unauthenticated(reason)));
            }
        };
        tracing::Span::current().record("caller", principal.name.as_str());
        if let Err(not_until) = self.calls.check_key(&principal.name) {
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
            tracing::warn!(caller = %principal.name, "call rate limit reached");
            return Err(refusal(AppError::RateLimited { what: "too many calls from this sender", retry_after }));
        }
        let limit = self.settings.max_concurrent_calls_per_sender;
        let Some(slot) = SenderSlot::take(&self.per_sender, &principal.name, limit) else {
            tracing::warn!(caller = %principal.name, limit, "sender's calls in flight at their limit");
            let retry_after = Duration::from_millis(100);
            return Err(refusal(AppError::RateLimited { what: "too many calls in flight from this sender", retry_after }));
        };
        let caller = Caller { principal, request_id: request_id.to_owned() };
        // The role is checked here, before the handler reads the request, so a refusal is
        // the same whatever the request holds; the use case checks again, with the object.
        if let Some(action) = action_of(rpc) {
            self.app.check_role(&caller, action).await.map_err(refusal)?;
        }
        Ok((caller, slot))
    }
}

impl<S> Service<Request<Body>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service that was polled ready is the one to call; leave a clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let path = request.uri().path().to_owned();
        let rpc = rpc_name(&path);
        let request_id = new_request_id();
        let client_request_id = client_request_id(&request);
        let span = tracing::info_span!("rpc", rpc, request_id = %request_id, client_request_id, caller = tracing::field::Empty);
        let started = Instant::now();
        let id = request_id.clone();

        let answer = async move {
            let request_id = id;
            if is_health(&path) {
                // Health checks are answered even at capacity, so a busy server is not
                // taken for a dead one.
                return (inner.call(request).await.unwrap_or_else(|never| match never {}), None);
            }
            let Ok(permit) = state.in_flight.clone().try_acquire_owned() else {
                tracing::warn!("at capacity: call shed");
                return (refusal(AppError::Overloaded), None);
            };
            let (caller, slot) = match state.admit(PresentedCredentials::of(&request), &request_id, rpc).await {
                Ok(admitted) => admitted,
                Err(refused) => return (refused, Some(Admission { _permit: permit, _slot: None })),
            };
            let admission = Admission { _permit: permit, _slot: Some(slot) };
            let settings = state.settings;
            let (mut parts, body) = request.into_parts();
            let body = GuardedBody::new(body, state.bytes.clone(), caller.principal.name.clone(), settings.idle_stream_timeout);
            parts.extensions.insert(caller);
            let request = Request::from_parts(parts, Body::new(body));
            let deadline = if UPLOAD_RPCS.contains(&rpc) { settings.upload_deadline } else { settings.call_deadline };
            match tokio::time::timeout(deadline, inner.call(request)).await {
                Ok(response) => (response.unwrap_or_else(|never| match never {}), Some(admission)),
                Err(_) => {
                    tracing::warn!(deadline_ms = deadline.as_millis() as u64, "call deadline exceeded");
                    let message = format!("the call took longer than the gateway's deadline of {} s", deadline.as_secs());
                    (refusal(AppError::DeadlineExceeded(message)), Some(admission))
                }
            }
        };
        let metrics = self.state.app.metrics().clone();
        let idle = self.state.settings.idle_stream_timeout;
        Box::pin(
            async move {
                let (response, admission) = answer.await;
                let (mut parts, body) = response.into_parts();
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    parts.headers.insert(REQUEST_ID_METADATA, value);
                }
                // A trailers-only answer (an error before any message) has its status here.
                let code = parts.headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok());
                let watch = (STREAMED_RPCS.contains(&rpc) && code.is_none()).then_some(idle);
                let observed = ObservedBody::new(body, admission, watch, rpc, started, metrics, code);
                Ok(Response::from_parts(parts, Body::new(observed)))
            }
            .instrument(span),
        )
    }
}

pin_project_lite::pin_project! {
    /// A request body held to the sender's byte rate and to the idle timeout.
    struct GuardedBody {
        #[pin]
        inner: Body,
        bytes: Arc<DefaultKeyedRateLimiter<String>>,
        sender: String,
        idle: Duration,
        // Set while the service waits for the next frame: time counts only then, not while
        // the service is busy with what it already has.
        #[pin]
        waiting: Option<tokio::time::Sleep>,
    }
}

impl GuardedBody {
    fn new(inner: Body, bytes: Arc<DefaultKeyedRateLimiter<String>>, sender: String, idle: Duration) -> GuardedBody {
        GuardedBody { inner, bytes, sender, idle, waiting: None }
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting.set(None);
                if let Some(data) = frame.data_ref() {
                    if let Some(size) = NonZeroU32::new(u32::try_from(data.len()).unwrap_or(u32::MAX)) {
                        let allowed = match this.bytes.check_key_n(this.sender, size) {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
                            // A frame larger than the whole burst can never pass.
                            Err(_) => Err(Duration::from_secs(1)),
                        };
                        if let Err(retry_after) = allowed {
                            tracing::warn!(sender = %this.sender, "upload byte rate limit reached");
                            return Poll::Ready(Some(Err(Status::from(AppError::RateLimited {
                                what: "this sender is uploading faster than its byte rate allows",
                                retry_after,
                            }))));
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(status))) => Poll::Ready(Some(Err(status))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.waiting.is_none() {
                    this.waiting.set(Some(tokio::time::sleep(*this.idle)));
                }
                let timer = this.waiting.as_mut().as_pin_mut().expect("set just above");
                match timer.poll(cx) {
                    Poll::Ready(()) => {
                        let seconds = this.idle.as_secs();
                        tracing::warn!(idle_s = seconds, "request stream idle: stopped");
                        Poll::Ready(Some(Err(Status::from(AppError::DeadlineExceeded(format!(
                            "the request stream sent nothing for {seconds} s"
                        ))))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A call's answer and its place in the budget, which a watchdog can take away from a
/// streamed answer whose client has stopped reading it.
///
/// A stalled client is invisible from inside the body: once the HTTP/2 flow-control window
/// is full, hyper stops polling the body at all, so no timer in `poll_frame` would ever
/// fire. The watchdog is outside it. It tells "the client is not taking what is ready" from
/// "the service has nothing ready yet" (a report still being computed, a payroll run waiting
/// for the client's next employee): the clock runs only while a piece is ready, from the
/// moment the body returned one (hyper polls again at once if the client has room) or the
/// moment the service woke the body with the next one. When a piece has been ready and not
/// taken for the idle timeout, the watchdog drops the service's body (which stops the
/// export's producer) and the admission (which frees the sender's slot), and the answer
/// ends with DEADLINE_EXCEEDED if the client ever reads again.
struct Watched {
    held: Mutex<Option<(Body, Option<Admission>)>>,
    /// Since when a piece has been ready and not taken, in milliseconds since `since`;
    /// [`WAITING_ON_SERVICE`] while the service has nothing ready.
    ready_since_ms: AtomicU64,
    since: Instant,
    /// Set by the watchdog when it cut the answer off.
    cut: AtomicBool,
    /// The waker of the task polling the body (hyper's), woken through [`ServiceReady`].
    waker: Mutex<Option<Waker>>,
}

/// `ready_since_ms` while the service has nothing ready: no clock runs.
const WAITING_ON_SERVICE: u64 = u64::MAX;

impl Watched {
    fn new(body: Body, admission: Option<Admission>) -> Watched {
        Watched {
            held: Mutex::new(Some((body, admission))),
            ready_since_ms: AtomicU64::new(0),
            since: Instant::now(),
            cut: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    fn now_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    /// A piece is ready for the client from now.
    fn piece_ready(&self) {
        self.ready_since_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long a ready piece has waited for the client; zero while the service has none.
    fn unread_for(&self) -> Duration {
        match self.ready_since_ms.load(Ordering::Relaxed) {
            WAITING_ON_SERVICE => Duration::ZERO,
            ready => Duration::from_millis(self.now_ms().saturating_sub(ready)),
        }
    }

    /// Sleeps until a piece has waited `idle` for the client, then cuts the answer off;
    /// ends when the answer is dropped.
    async fn cut_when_unread(watched: std::sync::Weak<Watched>, idle: Duration) {
        loop {
            let Some(strong) = watched.upgrade() else { return };
            let unread = strong.unread_for();
            if unread >= idle {
                let mut held = strong.held.lock().expect("never poisoned");
                // Checked again under the lock: the client may have just taken a piece.
                if strong.unread_for() >= idle {
                    let taken = held.take();
                    strong.cut.store(true, Ordering::SeqCst);
                    drop(held);
                    tracing::warn!(idle_ms = idle.as_millis() as u64, "the client stopped reading a streamed answer: cut off, its slot freed");
                    drop(taken); // Outside the lock: dropping the body ends the producer.
                    return;
                }
                continue;
            }
            drop(strong);
            // While the service has nothing ready, look again after a whole idle period.
            tokio::time::sleep(if unread.is_zero() { idle } else { idle - unread }).await;
        }
    }
}

/// The waker the service's body is polled with: when the service has the next piece ready,
/// the clock starts, then hyper's task is woken as it would have been.
struct ServiceReady(std::sync::Weak<Watched>);

impl std::task::Wake for ServiceReady {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(watched) = self.0.upgrade() {
            let _ = watched.ready_since_ms.compare_exchange(WAITING_ON_SERVICE, watched.now_ms(), Ordering::Relaxed, Ordering::Relaxed);
            if let Some(waker) = watched.waker.lock().expect("never poisoned").as_ref() {
                waker.wake_by_ref();
            }
        }
    }
}

/// A response body that records the call's metrics when the answer ends (or is dropped),
/// and holds the call's place in the concurrency budget until then (or until a watchdog cuts
/// a streamed answer its client stopped reading).
struct ObservedBody {
    watched: Arc<Watched>,
    /// For a streamed answer: the watchdog, and the waker that tells it the service is ready.
    watchdog: Option<(tokio::task::AbortHandle, Waker)>,
    idle: Duration,
    rpc: &'static str,
    started: Instant,
    metrics: Arc<crate::metrics::Metrics>,
    code: Option<i32>,
    ended: bool,
}

impl ObservedBody {
    /// `watch`: the idle timeout of a streamed answer, which gets a watchdog.
    fn new(
        body: Body,
        admission: Option<Admission>,
        watch: Option<Duration>,
        rpc: &'static str,
        started: Instant,
        metrics: Arc<crate::metrics::Metrics>,
        code: Option<i32>,
    ) -> ObservedBody {
        let watched = Arc::new(Watched::new(body, admission));
        let watchdog = watch.map(|idle| {
            let task = tokio::spawn(Watched::cut_when_unread(Arc::downgrade(&watched), idle).in_current_span());
            (task.abort_handle(), Waker::from(Arc::new(ServiceReady(Arc::downgrade(&watched)))))
        });
        ObservedBody { watched, watchdog, idle: watch.unwrap_or_default(), rpc, started, metrics, code, ended: false }
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some((watchdog, _)) = &self.watchdog {
            watchdog.abort();
        }
        // No status seen: the client went away before the answer ended.
        let code = match (self.code, self.ended) {
            _ if self.watched.cut.load(Ordering::SeqCst) => tonic::Code::DeadlineExceeded,
            (Some(code), _) => tonic::Code::from_i32(code),
            (None, true) => tonic::Code::Ok,
            (None, false) => tonic::Code::Cancelled,
        };
        self.metrics.observe_rpc(self.rpc, &format!("{code:?}"), self.started.elapsed());
    }
}

/// The trailers that end an answer cut off by its watchdog.
fn cut_off_trailers(idle: Duration) -> http::HeaderMap {
    let status = Status::deadline_exceeded(format!(
        "the answer was not read for {} s: the gateway stopped sending it; ask again",
        idle.as_secs().max(1)
    ));
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    if let Ok(message) = HeaderValue::from_str(status.message()) {
        trailers.insert("grpc-message", message);
    }
    trailers
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let polled = {
            let mut held = this.watched.held.lock().expect("never poisoned");
            match (held.as_mut(), &this.watchdog) {
                (Some((body, _)), None) => Pin::new(body).poll_frame(cx),
                (Some((body, _)), Some((_, service_ready))) => {
                    // Polled: the clock stops until the service has the next piece.
                    this.watched.ready_since_ms.store(WAITING_ON_SERVICE, Ordering::Relaxed);
                    {
                        let mut waker = this.watched.waker.lock().expect("never poisoned");
                        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            *waker = Some(cx.waker().clone());
                        }
                    }
                    let polled = Pin::new(body).poll_frame(&mut Context::from_waker(service_ready));
                    if polled.is_ready() {
                        this.watched.piece_ready();
                    }
                    polled
                }
                (None, _) if this.code.is_none() => {
                    // Cut off by the watchdog: end with DEADLINE_EXCEEDED, once.
                    this.code = Some(tonic::Code::DeadlineExceeded as i32);
                    return Poll::Ready(Some(Ok(Frame::trailers(cut_off_trailers(this.idle)))));
                }
                (None, _) => Poll::Ready(None),
            }
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(code) = trailers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
                        this.code = Some(code);
                    }
                }
            }
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match self.watched.held.lock().expect("never poisoned").as_ref() {
            Some((body, _)) => body.is_end_stream(),
            None => self.code.is_some(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.watched.held.lock().expect("never poisoned").as_ref() {
            Some((body, _)) => body.size_hint(),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_exactly_one_rpc() {
        for action in Action::ALL {
            assert_eq!(RPCS.iter().filter(|(_, a)| *a == action).count(), 1, "{action:?}");
        }
    }

    #[test]
    fn rpc_names_are_bounded() {
        assert_eq!(rpc_name("/fspc.gateway.v1.PaymentService/SubmitPayment"), "PaymentService/SubmitPayment");
        assert_eq!(rpc_name("/grpc.health.v1.Health/Check"), "Health/Check");
        assert_eq!(rpc_name("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"), "ServerReflection/ServerReflectionInfo");
        assert_eq!(rpc_name("/evil.Service/Whatever"), "unknown");
        assert_eq!(rpc_name("nonsense"), "unknown");
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let request = |value: &str| Request::builder().header("authorization", value).body(()).unwrap();
        assert_eq!(bearer_token(&request("Bearer gwk_x")), Ok(Some("gwk_x")));
        assert_eq!(bearer_token(&request("bearer  gwk_x ")), Ok(Some("gwk_x")));
        assert_eq!(bearer_token(&request("Basic abc")), Err(AuthError::Malformed));
        assert_eq!(bearer_token(&Request::new(())), Ok(None));
    }

    #[test]
    fn request_ids_are_made_here_and_a_clients_is_kept_only_when_plain() {
        let with = |value: &str| Request::builder().header(REQUEST_ID_METADATA, value).body(()).unwrap();
        assert_eq!(client_request_id(&with("abc-123")).as_deref(), Some("abc-123"));
        assert_eq!(client_request_id(&with("a b")), None);
        assert_eq!(client_request_id(&Request::new(())), None);
        assert_eq!(new_request_id().len(), 24);
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn a_senders_slots_are_limited_and_given_back() {
        let slots = Arc::new(Mutex::new(HashMap::new()));
        let first = SenderSlot::take(&slots, "acme", 2).unwrap();
        let _second = SenderSlot::take(&slots, "acme", 2).unwrap();
        assert!(SenderSlot::take(&slots, "acme", 2).is_none(), "at its limit");
        assert!(SenderSlot::take(&slots, "other", 2).is_some(), "another sender has its own");
        drop(first);
        assert!(SenderSlot::take(&slots, "acme", 2).is_some(), "a slot given back is free again");
        assert!(slots.lock().unwrap().get("other").is_none(), "an idle sender leaves no state");
    }

    /// A streamed answer whose pieces come from `pieces` (a piece per message sent).
    fn streamed_answer(pieces: tokio::sync::mpsc::Receiver<&'static str>, idle: Duration, metrics: Arc<crate::metrics::Metrics>) -> ObservedBody {
        let frames = tokio_stream::wrappers::ReceiverStream::new(pieces).map(|piece| Ok::<_, Status>(Frame::data(Bytes::from(piece))));
        let body = Body::new(http_body_util::StreamBody::new(frames));
        ObservedBody::new(body, None, Some(idle), "ExportService/ExportReport", Instant::now(), metrics, None)
    }

    async fn next_frame(body: &mut ObservedBody) -> Option<Frame<Bytes>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await.map(|frame| frame.unwrap())
    }

    use futures::StreamExt as _;

    #[tokio::test]
    async fn a_service_slow_to_produce_is_never_cut_off_while_its_client_waits() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (send, pieces) = tokio::sync::mpsc::channel(1);
        let mut body = streamed_answer(pieces, Duration::from_millis(200), metrics.clone());
        let producer = tokio::spawn(async move {
            for piece in ["report,", "computed slowly"] {
                tokio::time::sleep(Duration::from_millis(600)).await; // three idle periods
                send.send(piece).await.unwrap();
            }
        });
        // The client polls all along (as hyper does when it has room): nothing is cut.
        assert_eq!(next_frame(&mut body).await.unwrap().into_data().unwrap(), "report,");
        assert_eq!(next_frame(&mut body).await.unwrap().into_data().unwrap(), "computed slowly");
        producer.await.unwrap();
        assert!(next_frame(&mut body).await.is_none(), "the answer ends whole");
        drop(body);
        assert!(metrics.encode().contains("code=\"Ok\""), "{}", metrics.encode());
    }

    #[tokio::test]
    async fn a_piece_left_unread_for_the_idle_timeout_cuts_the_answer_off() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let (send, pieces) = tokio::sync::mpsc::channel(4);
        let mut body = streamed_answer(pieces, Duration::from_millis(200), metrics.clone());
        send.send("header,").await.unwrap();
        assert_eq!(next_frame(&mut body).await.unwrap().into_data().unwrap(), "header,");
        // The next piece becomes ready, and the client does not take it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        send.send("rows").await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(send.is_closed(), "the service's body was dropped: its producer sees the client gone");
        let trailers = next_frame(&mut body).await.unwrap().into_trailers().unwrap();
        assert_eq!(trailers["grpc-status"], "4", "DEADLINE_EXCEEDED");
        assert!(next_frame(&mut body).await.is_none());
        drop(body);
        assert!(metrics.encode().contains("code=\"DeadlineExceeded\""), "{}", metrics.encode());
    }
}
