//! Signing in with an API key, and out.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::error::ConsoleError;
use super::page::{field, frame, FieldKind};
use super::server::sign_in_key;
use super::{new_request_id, Console, Signed};
use crate::app::AppError;

/// The sign-in page; `problem` is said beside the key field.
fn sign_in_page(problem: Option<&str>) -> axum::response::Html<String> {
    frame(
        "Sign in",
        html! {
            main id="main" .narrow {
                h1 { "Sign in" }
                p { "Sign in with the API key the agency gave you (it starts with " code { "gwk_" } "). "
                    "Back-office, employer and vendor keys may sign in." }
                form method="post" action="/sign-in" {
                    (field("key", "API key", "", problem, FieldKind::Secret))
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

pub async fn form() -> axum::response::Html<String> {
    sign_in_page(None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    key: String,
}

pub async fn submit(State(console): State<Console>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(form): Form<SignInForm>) -> Response {
    let now = Instant::now();
    let address = sign_in_key(peer);
    if let Some(wait) = console.sign_ins.blocked(address, now) {
        let message = format!("too many failed sign-ins from this address: try again in {} seconds", wait.as_secs().max(1));
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())], sign_in_page(Some(&message)))
            .into_response();
    }
    let request_id = new_request_id();
    match console.app.console_sign_in(form.key.trim(), &request_id).await {
        Ok(principal) => match console.sessions.open(form.key.trim().to_owned(), now) {
            Ok((id, _)) => {
                tracing::info!(who = %principal.name, role = %principal.role, "console sign-in");
                ([(header::SET_COOKIE, console.settings.cookie(Some(&id)))], Redirect::to("/")).into_response()
            }
            Err(full) => ConsoleError::Unavailable(full.to_string()).into_response(),
        },
        Err(AppError::Unauthenticated(crate::app::AuthError::Unavailable)) => {
            ConsoleError::Unavailable("the gateway cannot read its keys right now; try again shortly".to_owned()).into_response()
        }
        Err(AppError::PermissionDenied(message)) => (StatusCode::FORBIDDEN, sign_in_page(Some(&message))).into_response(),
        Err(AppError::Unauthenticated(_)) => {
            console.sign_ins.failed(address, now);
            (StatusCode::UNAUTHORIZED, sign_in_page(Some("that key is not valid: check it and try again"))).into_response()
        }
        Err(other) => ConsoleError::from(other).into_response(),
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(State(console): State<Console>, signed: Signed, Form(form): Form<SignOutForm>) -> Result<Response, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    console.sessions.end(&signed.session_id);
    Ok(([(header::SET_COOKIE, console.settings.cookie(None))], Redirect::to("/sign-in")).into_response())
}
