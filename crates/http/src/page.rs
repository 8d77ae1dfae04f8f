//! Lists a page at a time: every list endpoint takes `?cursor=` (the previous page's
//! `next_cursor`, opaque) and `?limit=`, and answers `{items, next_cursor}`.

use serde::Deserialize;
use utoipa::IntoParams;

pub use msa_kernel::page::{next_cursor, MAX_RECORDS, RECORDS_PAGE};

use crate::{FieldError, Problem};

/// The query of a public list: `limit` 1 to 100 (50 when not given).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100 (default 50).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<u32, Problem> {
        page_limit(self.limit.as_deref())
    }

    /// The cursor, as this API gave it out (`T`: what the endpoint's cursors encode).
    pub fn cursor<T: std::str::FromStr>(&self) -> Result<Option<T>, Problem> {
        page_cursor(self.cursor.as_deref())
    }
}

/// The query of a page of a person's records (the export, between services): `limit` 1 to
/// [`MAX_RECORDS`] (500 when not given).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 1,000 (default 500).
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

impl RecordsQuery {
    pub fn limit(&self) -> Result<u32, Problem> {
        limit_within(self.limit.as_deref(), RECORDS_PAGE, MAX_RECORDS)
    }
}

/// The `limit` of a list: 1 to 100, 50 when not given (every list endpoint's convention).
pub fn page_limit(raw: Option<&str>) -> Result<u32, Problem> {
    limit_within(raw, 50, 100)
}

/// A `limit` from 1 to `max`, `default` when not given; anything else names the field.
fn limit_within(raw: Option<&str>, default: u32, max: u32) -> Result<u32, Problem> {
    match raw.map(str::parse::<u32>) {
        None => Ok(default),
        Some(Ok(limit)) if (1..=max).contains(&limit) => Ok(limit),
        Some(_) => Err(Problem::invalid(vec![FieldError::new(
            "limit",
            format!("a whole number from 1 to {max}"),
        )])),
    }
}

/// The `cursor` of a list, as this API gave it out (`T`: what the endpoint's cursors encode);
/// anything else names the field.
pub fn page_cursor<T: std::str::FromStr>(raw: Option<&str>) -> Result<Option<T>, Problem> {
    raw.map(|raw| {
        raw.parse::<T>().map_err(|_| {
            Problem::invalid(vec![FieldError::new(
                "cursor",
                "not a cursor this API gave out",
            )])
        })
    })
    .transpose()
}
