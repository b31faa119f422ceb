//! The paging rule shared by every HTTP listing (the agent's local API, the hub's admin API):
//! page sizes and the header naming the next page's cursor.

/// Items in a page when the caller does not say.
pub const DEFAULT_PAGE: usize = 100;
/// Most items a caller may ask for in one page.
pub const MAX_PAGE: usize = 1000;
/// Response header carrying the cursor of the next page (`?after=` value); absent on the last.
pub const NEXT_CURSOR_HEADER: &str = "poros-next-cursor";

/// Why a page request is refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// `limit` out of range.
    #[error("limit must be between 1 and {MAX_PAGE} (got {0})")]
    Limit(usize),
    /// `after` is not a cursor this listing issued.
    #[error("{0:?} is not a listing cursor (use the cursor of the previous page)")]
    Cursor(String),
}

/// Checks a requested page size (`None`: the default).
pub fn page_size(limit: Option<usize>) -> Result<usize, PageError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(PageError::Limit(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None), Ok(DEFAULT_PAGE));
        assert_eq!(page_size(Some(MAX_PAGE)), Ok(MAX_PAGE));
        let e = page_size(Some(MAX_PAGE + 1)).expect_err("over the maximum");
        assert!(e.to_string().contains(&MAX_PAGE.to_string()));
        assert!(page_size(Some(0)).is_err());
    }
}
