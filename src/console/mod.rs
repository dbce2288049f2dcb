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
mod page;
pub mod session;
mod sign_in;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
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

/// The session cookie's name.
const COOKIE: &str = "gw_console";

/// The console's settings.
#[derive(Clone, Copy, Debug)]
pub struct ConsoleSettings {
    pub sessions: SessionLimits,
    /// Failed sign-ins allowed from one address at once, then one a minute.
    pub sign_in_failures_burst: u32,
    /// Mark the cookie `Secure` (the console is served behind TLS).
    pub secure_cookie: bool,
}

impl ConsoleSettings {
    pub const STANDARD: ConsoleSettings = ConsoleSettings { sessions: SessionLimits::STANDARD, sign_in_failures_burst: 10, secure_cookie: false };
}

/// The console's shared state.
#[derive(Clone)]
pub struct Console {
    app: App,
    sessions: Arc<Sessions>,
    sign_ins: Arc<SignInGuard>,
    secure_cookie: bool,
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

/// Serves the console on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, app: App, settings: ConsoleSettings) -> std::io::Result<()> {
    let console = Console {
        app,
        sessions: Arc::new(Sessions::new(settings.sessions)),
        sign_ins: Arc::new(SignInGuard::new(settings.sign_in_failures_burst)),
        secure_cookie: settings.secure_cookie,
    };
    let housekeeping = {
        let console = console.clone();
        tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(Duration::from_secs(60));
            loop {
                every_minute.tick().await;
                console.sessions.forget_ended(Instant::now());
                console.sign_ins.forget_idle();
            }
        })
    };
    let served = axum::serve(listener, router(console).into_make_service_with_connect_info::<SocketAddr>()).await;
    housekeeping.abort();
    served
}

fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", include_str!("assets/console.css")) }))
        .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/console.js")) }))
        .route("/files", get(files::list))
        .route("/files/{sender}/{batch_id}", get(files::detail))
        .route("/upload", get(files::upload_form).post(files::upload))
        .route("/key-in", get(files::key_in_form).post(files::key_in))
        .route("/dashboard", get(back_office::dashboard))
        .route("/suspense", get(back_office::suspense_list))
        .route("/suspense/{id}", get(back_office::suspense_item))
        .route("/suspense/{id}/resolve", post(back_office::resolve))
        .route("/suspense/{id}/return", post(back_office::return_item))
        .route("/distribution", get(back_office::distribution).post(back_office::run_distribution))
        .route("/collections/{id}", get(back_office::collection))
        .route("/orders/{order_id}", get(back_office::order_statement))
        .route("/exports", get(back_office::exports))
        .route("/exports/{name}", get(back_office::download))
        .fallback(|| async { ConsoleError::NotFound("there is no such page".to_owned()) })
        .layer(axum::middleware::map_response(security_headers))
        // A remittance file for the console is small: larger ones go through the gRPC API.
        .layer(axum::extract::DefaultBodyLimit::max(files::MAX_CONSOLE_UPLOAD_BYTES))
        .with_state(console)
}

/// Every answer: no framing, no sniffing, scripts and styles only from the console itself,
/// and pages never cached (they show money and names).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
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

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<Console> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Signed, Response> {
        let to_sign_in = || Redirect::to("/sign-in").into_response();
        let Some(session_id) = session_id(&parts.headers) else { return Err(to_sign_in()) };
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
        let caller = Caller { principal, request_id: session::random_id()[..24].to_owned() };
        Ok(Signed { caller, csrf: session.csrf.clone(), session_id, session })
    }
}

impl axum::extract::OptionalFromRequestParts<Console> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Option<Signed>, Self::Rejection> {
        Ok(<Signed as FromRequestParts<Console>>::from_request_parts(parts, console).await.ok())
    }
}
