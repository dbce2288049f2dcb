//! The pages' frame and the pieces every page shares: one way to show money, dates, lists
//! and their paging, empty lists and field errors.

use axum::response::Html;
use maud::{html, Markup, DOCTYPE};

use super::Signed;
use crate::domain::access::Role;
use crate::domain::Money;

/// A page of the console, with its navigation for the signed-in role.
pub fn layout(signed: &Signed, title: &str, current: &str, body: Markup) -> Html<String> {
    let principal = signed.principal();
    let links: &[(&str, &str)] = match principal.role {
        Role::BackOffice => &[
            ("/dashboard", "Dashboard"),
            ("/files", "Files"),
            ("/suspense", "Suspense"),
            ("/obligors", "Obligors"),
            ("/projected-ends", "Projected ends"),
            ("/notices", "Notices"),
            ("/distribution", "Distribution"),
            ("/exports", "Exports"),
        ],
        _ => &[("/files", "Our files"), ("/upload", "Upload a file"), ("/key-in", "Key in lines"), ("/notices", "Termination notices")],
    };
    frame(
        title,
        html! {
            header.top {
                a.brand href="/" { "Remittance gateway" }
                nav aria-label="Main" {
                    ul {
                        @for (href, label) in links {
                            li { a href=(href) aria-current=[(*href == current).then_some("page")] { (label) } }
                        }
                    }
                }
                form.sign-out method="post" action="/sign-out" {
                    span.who { (principal.name) " · " (principal.role.as_str()) }
                    input type="hidden" name="csrf" value=(signed.csrf);
                    button type="submit" { "Sign out" }
                }
            }
            main id="main" {
                h1 { (title) }
                (body)
            }
        },
    )
}

/// The document around a page's content.
pub fn frame(title: &str, content: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " — Remittance gateway" }
                    link rel="stylesheet" href="/assets/console.css";
                    script src="/assets/console.js" defer {}
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    (content)
                }
            }
        }
        .into_string(),
    )
}

/// An error on a page of its own.
pub fn error_page(title: &str, message: &str) -> Html<String> {
    frame(
        title,
        html! {
            main id="main" {
                h1 { (title) }
                p.error role="alert" { (message) }
                p { a href="/" { "Back to the console" } }
            }
        },
    )
}

/// An amount: two decimals, digits grouped, for a right-aligned cell.
pub fn money(amount: Money) -> Markup {
    let plain = amount.to_string();
    let (sign, digits) = plain.strip_prefix('-').map_or(("", plain.as_str()), |rest| ("-", rest));
    let (whole, cents) = digits.split_once('.').unwrap_or((digits, "00"));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    html! { span.money { (sign) "$" (grouped) "." (cents) } }
}

/// An instant as the console shows it: `2026-12-03 14:05 UTC` (stored as RFC 3339, UTC).
pub fn instant(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(at) => at.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// What an empty list says, with what to do about it.
pub fn empty(message: &str) -> Markup {
    html! { p.empty { (message) } }
}

/// The link to a list's next page, keeping its filters.
pub fn next_page(path: &str, query: &[(&str, String)], next_page_token: &str) -> Markup {
    if next_page_token.is_empty() {
        return html! {};
    }
    let mut parts: Vec<String> = query
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", url_encode(value)))
        .collect();
    parts.push(format!("page_token={}", url_encode(next_page_token)));
    let href = format!("{path}?{}", parts.join("&"));
    html! { nav.paging aria-label="Pages" { a href=(href) rel="next" { "Next page →" } } }
}

/// Percent-encodes a query value.
pub fn url_encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => encoded.push(byte as char),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

/// A labelled text field that keeps what was typed and shows its error beside it.
pub fn field(name: &str, label: &str, value: &str, error: Option<&str>, attributes: FieldKind) -> Markup {
    let id = format!("field-{name}");
    let error_id = format!("{id}-error");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            @match attributes {
                FieldKind::Text { required, hint } => {
                    input type="text" id=(id) name=(name) value=(value) required[required] placeholder=[hint]
                        aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| error_id.as_str())];
                }
                FieldKind::Secret => {
                    input type="password" id=(id) name=(name) value=(value) required autocomplete="current-password"
                        aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| error_id.as_str())];
                }
            }
            @if let Some(error) = error {
                p.field-error id=(error_id) { (error) }
            }
        }
    }
}

/// What kind of input a [`field`] is.
#[derive(Clone, Copy)]
pub enum FieldKind<'a> {
    Text { required: bool, hint: Option<&'a str> },
    Secret,
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.csrf); }
}

/// A notice at the top of a page (what a form just did).
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// A bar chart of amounts per day, drawn on the server as SVG (no script needed).
pub fn bar_chart(title: &str, days: &[(chrono::NaiveDate, Money)]) -> Markup {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 160.0;
    let highest = days.iter().map(|(_, m)| m.cents()).max().unwrap_or(0).max(1) as f64;
    let slot = WIDTH / days.len().max(1) as f64;
    let bars: Vec<(f64, f64, f64, String)> = days
        .iter()
        .enumerate()
        .map(|(i, (day, amount))| {
            let height = (amount.cents().max(0) as f64 / highest) * (HEIGHT - 20.0);
            (i as f64 * slot + 1.0, HEIGHT - height, height, format!("{day}: ${amount}"))
        })
        .collect();
    let (first, last) = (days.first().map(|d| d.0.to_string()), days.last().map(|d| d.0.to_string()));
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {}", HEIGHT + 18.0)) role="img" aria-label=(title) {
                title { (title) }
                @for (x, y, height, label) in &bars {
                    rect x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(format!("{:.1}", (slot - 2.0).max(1.0))) height=(format!("{height:.1}")) {
                        title { (label) }
                    }
                }
                line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
                @if let (Some(first), Some(last)) = (first, last) {
                    text x="0" y=(HEIGHT + 14.0) { (first) }
                    text x=(WIDTH) y=(HEIGHT + 14.0) text-anchor="end" { (last) }
                }
            }
            figcaption { (title) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals_and_grouped_digits() {
        assert_eq!(money(Money::from_cents(123_456_789)).into_string(), r#"<span class="money">$1,234,567.89</span>"#);
        assert_eq!(money(Money::from_cents(-5)).into_string(), r#"<span class="money">-$0.05</span>"#);
        assert_eq!(money(Money::from_cents(100_00)).into_string(), r#"<span class="money">$100.00</span>"#);
    }

    #[test]
    fn instants_show_in_one_format_and_query_values_are_encoded() {
        assert_eq!(instant("2026-12-03T14:05:09.123Z"), "2026-12-03 14:05 UTC");
        assert_eq!(instant("2026-12-03T09:05:09-05:00"), "2026-12-03 14:05 UTC");
        assert_eq!(url_encode("ACME 1/2&x"), "ACME%201%2F2%26x");
    }

    #[test]
    fn what_a_user_typed_is_escaped() {
        let markup = field("batch_id", "Batch", "<script>", Some("1 to 64 characters"), FieldKind::Text { required: true, hint: None });
        let html = markup.into_string();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "{html}");
        assert!(html.contains(r#"aria-describedby="field-batch_id-error""#), "{html}");
    }
}
