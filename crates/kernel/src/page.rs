//! Lists a page at a time: a page ends where the next one starts (an opaque cursor), and a page
//! shorter than asked is the last. The HTTP adapters parse `?cursor=` and `?limit=`.

/// The most rows a page of a person's records holds (the export, between services).
pub const MAX_RECORDS: u32 = 1_000;

/// The rows a page of records holds when the caller does not say (what user-chat asks for).
pub const RECORDS_PAGE: u32 = 500;

/// The `next_cursor` of a page: the cursor of its last item when the page is full (a shorter
/// page is the last).
pub fn next_cursor<T>(
    items: &[T],
    limit: u32,
    cursor_of: impl Fn(&T) -> Option<String>,
) -> Option<String> {
    if items.len() < limit as usize {
        return None;
    }
    items.last().and_then(cursor_of)
}
