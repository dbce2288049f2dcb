//! Pages of a list (AIP-158): at most `page_size` items, and an opaque token that continues
//! after the last one. A token is the list's name and a cursor, hex-encoded, so a client
//! treats it as opaque and a token of one list is refused by another.

use super::AppError;

/// Items in a page when the client does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most items in one page, whatever the client asks.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which page of a list the client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u32,
    /// Continue after this cursor (the last item of the previous page).
    pub after: Option<String>,
}

impl PageRequest {
    /// The first page of `DEFAULT_PAGE_SIZE` items.
    pub const FIRST: PageRequest = PageRequest { size: DEFAULT_PAGE_SIZE, after: None };

    /// From the request's `page_size` (0: the default; capped at the maximum; negative is
    /// an error) and `page_token` of list `list`.
    pub fn parse(list: &str, page_size: i32, page_token: &str) -> Result<PageRequest, AppError> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size if size < 0 => return Err(AppError::invalid("page_size", "a page size is 0 (the default, 100) or more")),
            size => (size as u32).min(MAX_PAGE_SIZE),
        };
        let after = match page_token {
            "" => None,
            token => Some(cursor_of(list, token).ok_or_else(not_a_token)?),
        };
        Ok(PageRequest { size, after })
    }
}

impl PageRequest {
    /// The cursor of a list that pages by a numeric id; `None` on the first page.
    pub fn id_cursor(&self) -> Result<Option<i64>, AppError> {
        self.after.as_deref().map(|cursor| cursor.parse::<i64>().map_err(|_| not_a_token())).transpose()
    }
}

fn not_a_token() -> AppError {
    AppError::invalid("page_token", "not a page token of this list")
}

/// A page of items and the token of the next page (empty on the last page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// The token of the page after `cursor` in list `list`.
pub fn token(list: &str, cursor: &str) -> String {
    hex::encode(format!("{list}:{cursor}"))
}

fn cursor_of(list: &str, token: &str) -> Option<String> {
    let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
    text.strip_prefix(list)?.strip_prefix(':').map(str::to_owned)
}

/// The page of `size` items from `fetched`, which holds up to `size + 1` items in list order
/// (one more than the page tells whether another page follows); `cursor` names an item.
pub fn page<T>(list: &str, size: u32, mut fetched: Vec<T>, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = fetched.len() > size as usize;
    fetched.truncate(size as usize);
    let next_page_token = match (more, fetched.last()) {
        (true, Some(last)) => token(list, &cursor(last)),
        _ => String::new(),
    };
    Page { items: fetched, next_page_token }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_belong_to_their_list() {
        let request = PageRequest::parse("remittances", 0, &token("remittances", "42")).unwrap();
        assert_eq!(request, PageRequest { size: DEFAULT_PAGE_SIZE, after: Some("42".into()) });
        assert!(PageRequest::parse("keys", 10, &token("remittances", "42")).is_err());
        assert!(PageRequest::parse("keys", 10, "not hex").is_err());
        assert!(PageRequest::parse("keys", -1, "").is_err());
        assert_eq!(PageRequest::parse("keys", 5000, "").unwrap().size, MAX_PAGE_SIZE);
    }

    #[test]
    fn a_page_says_whether_another_follows() {
        let full = page("n", 2, vec![1, 2, 3], |n| n.to_string());
        assert_eq!((full.items, full.next_page_token), (vec![1, 2], token("n", "2")));
        let last = page("n", 2, vec![3], |n| n.to_string());
        assert_eq!((last.items, last.next_page_token), (vec![3], String::new()));
    }
}
