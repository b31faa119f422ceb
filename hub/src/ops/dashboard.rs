//! The monitoring dashboard's routes: the page (monitor credential required), its script and
//! style, and its messages in each language from the translation catalogue.
//!
//! The page holds no sentence of its own: every text element names a catalogue message
//! (`data-i18n="dashboard-…"`, `msg("dashboard-…")` in app.js), and the script fetches the
//! messages of the reader's language from `/dashboard/messages/{lang}.json`. The language is the
//! browser's (`navigator.languages`, the first Poros speaks) unless the reader picked one with
//! the page's switch; the script formats numbers and dates for it with `Intl`. The refusal page
//! is rendered here, in the language of the request's `Accept-Language`.

use super::{accept_language, monitor_request_ok, Ops, StatsQuery};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use poros_i18n::{patterns, t, tr, Lang};
use poros_transport::http::StrictQuery;
use serde_json::json;

/// The dashboard's routes, merged into the operations router.
pub(super) fn routes() -> Router<Ops> {
    Router::new()
        .route("/dashboard", get(page))
        .route(
            "/dashboard/app.js",
            get(|| async {
                (
                    [("content-type", "text/javascript; charset=utf-8")],
                    include_str!("../../assets/app.js"),
                )
            }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async {
                (
                    [("content-type", "text/css; charset=utf-8")],
                    include_str!("../../assets/app.css"),
                )
            }),
        )
        .route("/dashboard/messages/:file", get(messages))
}

/// `&`, `<`, `>`, `"` as HTML entities (catalogue text placed in the refusal page).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The refusal page, without any figure, in `lang`.
fn refusal(lang: Lang) -> String {
    let code = |s: &str| format!("<code>{}</code>", escape(s));
    let body = t!(
        lang,
        "dashboard-refused-body",
        url = "\u{1}",
        command = "\u{2}"
    );
    // The slots are filled after escaping, so the markup around them survives.
    let body = escape(&body)
        .replace('\u{1}', &code("/dashboard?token=<monitor token>"))
        .replace('\u{2}', &code("poros-hub monitor add NAME"));
    format!(
        "<!doctype html><html lang=\"{lang}\"><meta charset=\"utf-8\"><title>Poros</title>\
         <h1>{title}</h1><p>{body}</p></html>",
        title = escape(&tr(lang, "dashboard-refused-title")),
    )
}

async fn page(
    State(st): State<Ops>,
    h: HeaderMap,
    StrictQuery(q): StrictQuery<StatsQuery>,
) -> Response {
    if !monitor_request_ok(&st, &h, &q).await {
        return (
            StatusCode::UNAUTHORIZED,
            [
                ("content-type", "text/html; charset=utf-8"),
                ("vary", "accept-language"),
            ],
            refusal(accept_language(&h)),
        )
            .into_response();
    }
    (
        [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
        ],
        include_str!("../../assets/dashboard.html"),
    )
        .into_response()
}

/// `GET /dashboard/messages/{en,vi}.json`: the dashboard's messages in that language as
/// patterns with `{slot}`s for the page to fill, and the languages the switch offers, each
/// named in its own language. Not secret (they are compiled into the binary), so no credential.
async fn messages(Path(file): Path<String>) -> Response {
    let Some(lang) = file
        .strip_suffix(".json")
        .and_then(|code| Lang::ALL.into_iter().find(|l| l.code() == code))
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no dashboard messages {file:?}: the languages are en.json and vi.json")})),
        )
            .into_response();
    };
    // Each language is named in its own tongue (common-lang-*), whatever the page's language.
    let languages: Vec<_> = Lang::ALL
        .into_iter()
        .map(|l| {
            let name = match l {
                Lang::En => tr(l, "common-lang-en"),
                Lang::Vi => tr(l, "common-lang-vi"),
            };
            json!({"code": l.code(), "name": name})
        })
        .collect();
    (
        [("cache-control", "no-cache")],
        Json(json!({
            "lang": lang.code(),
            "languages": languages,
            "messages": patterns(lang, "dashboard-"),
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_page_speaks_the_language_and_keeps_its_markup() {
        let en = refusal(Lang::En);
        assert!(en.contains("<html lang=\"en\">"), "{en}");
        assert!(en.contains("<h1>Monitor credential required</h1>"), "{en}");
        assert!(
            en.contains("<code>/dashboard?token=&lt;monitor token&gt;</code>"),
            "{en}"
        );
        assert!(
            en.contains("<code>poros-hub monitor add NAME</code>"),
            "{en}"
        );
        let vi = refusal(Lang::Vi);
        assert!(vi.contains("<html lang=\"vi\">"), "{vi}");
        assert!(
            vi.contains("<h1>Cần thông tin xác thực giám sát</h1>"),
            "{vi}"
        );
        assert!(
            vi.contains("<code>poros-hub monitor add NAME</code>"),
            "{vi}"
        );
    }
}
