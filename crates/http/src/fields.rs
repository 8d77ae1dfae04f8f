//! Parsing a request's fields into domain values, naming every invalid one: a handler parses
//! each field with its domain type's `parse`, then answers one 422 problem listing them all.

use std::fmt::Display;

use crate::{FieldError, Problem};

/// Collects every field's parse error, so one answer names all of them.
#[derive(Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// A required field: `required` when it is missing, else what `parse` says of it.
    pub fn parse<T, E: Display>(
        &mut self,
        field: &str,
        value: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let Some(value) = value else {
            self.0.push(FieldError::new(field, "required"));
            return None;
        };
        self.optional(field, Some(value), parse)
    }

    /// A required field taken as it is.
    pub fn text(&mut self, field: &str, value: Option<&str>) -> Option<String> {
        self.parse(field, value, |text| Ok::<_, String>(text.to_owned()))
    }

    /// An optional field: `None` when it is missing or invalid (then named).
    pub fn optional<T, E: Display>(
        &mut self,
        field: &str,
        value: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(value?) {
            Ok(parsed) => Some(parsed),
            Err(invalid) => {
                self.0.push(FieldError::new(field, invalid.to_string()));
                None
            }
        }
    }

    /// `Err` with the 422 problem naming every invalid field, if there is one.
    pub fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid(self.0))
        }
    }

    /// One field's parsed value, or the 422 problem naming it.
    pub fn one<T, E: Display>(field: &str, parsed: Result<T, E>) -> Result<T, Problem> {
        parsed
            .map_err(|invalid| Problem::invalid(vec![FieldError::new(field, invalid.to_string())]))
    }
}
