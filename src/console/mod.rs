//! The web console: pages for the back office and for small employers and vendors, served by
//! the gateway itself over HTTP/1.1 on its own address (`--console-listen`).
//!
//! Every page calls the same application use cases as the gRPC API, as the signed-in key:
//! the same authorization table, the same audit rows, the same errors (mapped to HTTP in
//! [`error`]). The HTML is rendered on the server (maud, checked at compile time); one small
//! script of our own (`assets/console.js`) adds an upload progress bar and keyboard
//! shortcuts, and every read and every form works without it.

mod back_office;
mod error;
mod files;
mod notices;
mod orders;
mod page;
mod server;
pub mod session;
mod sign_in;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::net::TcpListener;

use crate::app::{App, Caller, Credentials};
use crate::domain::access::{Principal, Role};
use error::ConsoleError;
use session::{SessionLimits, Sessions};

/// The console's settings.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleSettings {
    pub sessions: SessionLimits,
    /// Failed sign-ins allowed from one address at once, then one a minute.
    pub sign_in_failures_burst: u32,
    /// The console is served behind TLS (the agency's proxy): the cookie is `Secure` and
    /// `__Host-` prefixed, and browsers are told to use HTTPS only (HSTS).
    pub behind_tls: bool,
    /// Connections open at once; past it new ones are closed.
    pub max_connections: usize,
    /// How long a connection may take to send a request's head.
    pub header_read_timeout: Duration,
    /// Requests in flight at once, every user together; past it, 503 at once.
    pub max_requests_in_flight: usize,
    /// The longest a page or form may take; an upload's is `upload_deadline`.
    pub request_deadline: Duration,
    pub upload_deadline: Duration,
    /// Requests per second a signed-in key may make, and at once above that.
    pub requests_per_second_per_key: u32,
    pub request_burst_per_key: u32,
}

impl ConsoleSettings {
    pub const STANDARD: ConsoleSettings = ConsoleSettings {
        sessions: SessionLimits::STANDARD,
        sign_in_failures_burst: 10,
        behind_tls: false,
        max_connections: 256,
        header_read_timeout: Duration::from_secs(10),
        max_requests_in_flight: 64,
        request_deadline: Duration::from_secs(120),
        upload_deadline: Duration::from_secs(3600),
        requests_per_second_per_key: 20,
        request_burst_per_key: 60,
    };

    /// The session cookie's name: `__Host-` behind TLS, so that no other site of the domain
    /// can set it.
    fn cookie_name(&self) -> &'static str {
        if self.behind_tls {
            "__Host-gw_console"
        } else {
            "gw_console"
        }
    }

    /// The session cookie, or its removal when `id` is `None`.
    pub fn cookie(&self, id: Option<&str>) -> String {
        let secure = if self.behind_tls { "; Secure" } else { "" };
        match id {
            Some(id) => format!("{}={id}; Path=/; HttpOnly; SameSite=Strict{secure}", self.cookie_name()),
            None => format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", self.cookie_name()),
        }
    }
}

/// A new request id (96 random bits, as hex), for the audit trail and the log.
pub fn new_request_id() -> String {
    session::random_id()[..24].to_owned()
}

/// The console's shared state.
#[derive(Clone)]
pub struct Console {
    app: App,
    sessions: Arc<Sessions>,
    sign_ins: Arc<SignInGuard>,
    settings: ConsoleSettings,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Exports streaming at once (each holds a permit until its body is sent).
    exports: Arc<tokio::sync::Semaphore>,
    per_key: Arc<DefaultKeyedRateLimiter<String>>,
}

impl FromRef<Console> for App {
    fn from_ref(console: &Console) -> App {
        console.app.clone()
    }
}

/// Failed sign-ins per client address: a burst, then one a minute. An address past its
/// budget is refused before its key is even looked at, until the budget refills.
struct SignInGuard {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked_until: Mutex<std::collections::HashMap<IpAddr, Instant>>,
}

impl SignInGuard {
    fn new(burst: u32) -> SignInGuard {
        let burst = std::num::NonZeroU32::new(burst.max(1)).expect("at least one");
        let quota = Quota::per_minute(std::num::NonZeroU32::new(1).expect("one")).allow_burst(burst);
        SignInGuard { failures: RateLimiter::keyed(quota), blocked_until: Mutex::new(std::collections::HashMap::new()) }
    }

    /// How long `address` must still wait, if it is blocked.
    fn blocked(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let blocked = self.blocked_until.lock().expect("never poisoned");
        blocked.get(&address).and_then(|until| until.checked_duration_since(now)).filter(|wait| !wait.is_zero())
    }

    /// Counts a failed sign-in; past the budget the address is blocked for the wait.
    fn failed(&self, address: IpAddr, now: Instant) {
        use governor::clock::{Clock as _, DefaultClock};
        if let Err(not_until) = self.failures.check_key(&address) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self.blocked_until.lock().expect("never poisoned");
            blocked.retain(|_, until| *until > now);
            blocked.insert(address, now + wait);
        }
    }

    fn forget_idle(&self) {
        self.failures.retain_recent();
        let now = Instant::now();
        self.blocked_until.lock().expect("never poisoned").retain(|_, until| *until > now);
    }
}

/// Serves the console on `listener` until `stopping` turns true, then lets the requests in
/// flight finish (idle connections are closed at once) and returns.
pub async fn serve(listener: TcpListener, app: App, settings: ConsoleSettings, stopping: tokio::sync::watch::Receiver<bool>) {
    let per_second = std::num::NonZeroU32::new(settings.requests_per_second_per_key.max(1)).expect("at least one");
    let burst = std::num::NonZeroU32::new(settings.request_burst_per_key.max(1)).expect("at least one");
    let console = Console {
        app,
        sessions: Arc::new(Sessions::new(settings.sessions)),
        sign_ins: Arc::new(SignInGuard::new(settings.sign_in_failures_burst)),
        settings,
        in_flight: Arc::new(tokio::sync::Semaphore::new(settings.max_requests_in_flight)),
        exports: Arc::new(tokio::sync::Semaphore::new(MAX_EXPORTS_AT_ONCE)),
        per_key: Arc::new(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))),
    };
    let housekeeping = {
        let console = console.clone();
        tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(Duration::from_secs(60));
            loop {
                every_minute.tick().await;
                console.sessions.forget_ended(Instant::now());
                console.sign_ins.forget_idle();
                console.per_key.retain_recent();
            }
        })
    };
    server::accept(listener, router(console.clone()), &console, stopping).await;
    housekeeping.abort();
}

/// Exports downloading at once, every user together.
const MAX_EXPORTS_AT_ONCE: usize = 8;

/// The largest request body but an upload's: the forms are small.
const MAX_FORM_BYTES: usize = 64 * 1024;

fn router(console: Console) -> Router {
    let upload_limit = axum::extract::DefaultBodyLimit::max(files::MAX_CONSOLE_UPLOAD_BYTES);
    Router::new()
        .route("/", get(home))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", include_str!("assets/console.css")) }))
        .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/console.js")) }))
        .route("/files", get(files::list))
        .route("/files/{sender}/{batch_id}", get(files::detail))
        .route("/upload", get(files::upload_form).post(files::upload).layer(upload_limit))
        .route("/key-in", get(files::key_in_form).post(files::key_in))
        .route("/dashboard", get(back_office::dashboard))
        .route("/suspense", get(back_office::suspense_list))
        .route("/suspense/{id}", get(back_office::suspense_item))
        .route("/suspense/{id}/resolve", post(back_office::resolve))
        .route("/suspense/{id}/return", post(back_office::return_item))
        .route("/distribution", get(back_office::distribution).post(back_office::run_distribution))
        .route("/collections/{id}", get(back_office::collection))
        .route("/obligors", get(orders::search))
        .route("/orders/{order_id}", get(orders::order))
        .route("/orders/{order_id}/reviews", post(orders::request_review))
        .route("/orders/{order_id}/end", post(orders::record_end))
        .route("/orders/{order_id}/end/withdraw", post(orders::withdraw_end))
        .route("/projected-ends", get(orders::projected_ends))
        .route("/notices", get(notices::list))
        .route("/notices/{id}/handled", post(notices::mark_handled))
        .route("/exports", get(back_office::exports))
        .route("/exports/{name}", get(back_office::download))
        .fallback(|| async { ConsoleError::NotFound("there is no such page".to_owned()) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(server::same_origin_posts))
        .layer(axum::middleware::from_fn_with_state(console.clone(), server::admit))
        .layer(axum::middleware::map_response_with_state(console.clone(), security_headers))
        .with_state(console)
}

/// Every answer: no framing, no sniffing, scripts and styles only from the console itself,
/// and pages never cached (they show money and names).
async fn security_headers(State(console): State<Console>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    if console.settings.behind_tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// `/`: the signed-in user's first page.
async fn home(signed: Option<Signed>) -> Redirect {
    match signed {
        Some(signed) if signed.caller.principal.role == Role::BackOffice => Redirect::to("/dashboard"),
        Some(_) => Redirect::to("/files"),
        None => Redirect::to("/sign-in"),
    }
}

/// A request from a signed-in user: the caller every use case is called as, and the
/// session's CSRF token for the forms of the page.
pub struct Signed {
    pub caller: Caller,
    pub csrf: String,
    session_id: String,
    session: session::Session,
}

impl Signed {
    pub fn principal(&self) -> &Principal {
        &self.caller.principal
    }

    /// Checks a form's CSRF token: a state-changing request without this session's token is
    /// refused before anything else is read.
    pub fn check_csrf(&self, presented: &str) -> Result<(), ConsoleError> {
        if self.session.csrf_matches(presented) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden("this form has expired or did not come from the console: reload the page and try again".to_owned()))
        }
    }
}

fn session_id(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<Console> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Signed, Response> {
        let to_sign_in = || Redirect::to("/sign-in").into_response();
        let Some(session_id) = session_id(&parts.headers, console.settings.cookie_name()) else { return Err(to_sign_in()) };
        let Some(session) = console.sessions.touch(&session_id, Instant::now()) else { return Err(to_sign_in()) };
        // The key is checked again on every page, as on every gRPC call: a revoked key's
        // session ends here.
        let credentials = Credentials { token: Some(&session.token), client_cert_sha256: None };
        let principal = match console.app.authenticate(credentials).await {
            Ok(principal) => principal,
            Err(crate::app::AuthError::Unavailable) => {
                return Err(ConsoleError::Unavailable("the gateway cannot read its keys right now; try again shortly".to_owned()).into_response())
            }
            Err(error) => {
                tracing::info!(%error, "console session ended: its key no longer authenticates");
                console.sessions.end(&session_id);
                return Err(to_sign_in());
            }
        };
        if let Err(not_until) = console.per_key.check_key(&principal.name) {
            use governor::clock::{Clock as _, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let message = format!("too many requests from this key: try again in {} seconds", wait.as_secs().max(1));
            return Err(ConsoleError::TooMany(message).into_response());
        }
        let caller = Caller { principal, request_id: new_request_id() };
        Ok(Signed { caller, csrf: session.csrf.clone(), session_id, session })
    }
}

impl axum::extract::OptionalFromRequestParts<Console> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Option<Signed>, Self::Rejection> {
        Ok(<Signed as FromRequestParts<Console>>::from_request_parts(parts, console).await.ok())
    }
}
