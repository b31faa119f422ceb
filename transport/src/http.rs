//! What both local HTTP listeners (the agent's API, the hub's operations listener) share:
//! a query-string extractor that refuses invalid UTF-8 with a 400 instead of replacing it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// `axum::extract::Query`, except that a query whose percent-decoded names or values are not
/// UTF-8 is refused (axum's own decoder silently substitutes U+FFFD, which would sign or store
/// text the caller never sent).
pub struct StrictQuery<T>(pub T);

/// Check every `name=value` pair of a raw query string decodes to UTF-8.
pub fn check_query_utf8(raw: &str) -> Result<(), String> {
    for pair in raw.split('&') {
        for part in pair.splitn(2, '=') {
            let plus_as_space = part.replace('+', " ");
            if percent_encoding::percent_decode_str(&plus_as_space)
                .decode_utf8()
                .is_err()
            {
                let name = pair.split('=').next().unwrap_or("");
                let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                return Err(format!(
                    "query parameter {:?} is not valid UTF-8 after percent-decoding",
                    poros_protocol::text::escape_for_terminal(&name)
                ));
            }
        }
    }
    Ok(())
}

#[axum::async_trait]
impl<T, S> FromRequestParts<S> for StrictQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bad = |msg: String| {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "error": msg })),
            )
                .into_response()
        };
        check_query_utf8(parts.uri.query().unwrap_or("")).map_err(bad)?;
        let axum::extract::Query(q) = axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| bad(e.body_text()))?;
        Ok(StrictQuery(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_refused_and_valid_text_passes() {
        assert!(check_query_utf8("to=000.00.00.G01&subject=C%C3%B4ng+v%C4%83n").is_ok());
        assert!(check_query_utf8("").is_ok());
        let e = check_query_utf8("to=x&subject=%FF%FE").unwrap_err();
        assert!(e.contains("subject"), "{e}");
        assert!(check_query_utf8("%C3=x").is_err());
    }
}
