//! Input rules shared by several domains.

use crate::errors::{AppError, AppResult};

/// Login names: 3 to 64 of `a-z 0-9 . _ -`, compared without case.
pub fn username(raw: &str) -> AppResult<String> {
    let name = raw.trim().to_lowercase();
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !(3..=64).contains(&name.len()) || !ok_chars {
        return Err(AppError::bad_input(
            "username",
            "a user name has 3 to 64 characters: letters, digits, dots, dashes, underscores",
        ));
    }
    Ok(name)
}

/// A non-blank single-line text of at most `max` characters, trimmed.
pub fn text(field: &'static str, raw: &str, max: usize) -> AppResult<String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(AppError::bad_input(
            field,
            format!("{field} must have at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// ISO 3166-1 alpha-2 country code, uppercased.
pub fn country(raw: &str) -> AppResult<String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() != 2 || !code.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(AppError::bad_input(
            "defaultCountry",
            "a country is a two-letter ISO code such as IN",
        ));
    }
    Ok(code)
}

/// True when a database error is a unique-constraint violation.
pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(username(" Xyz112 ").unwrap(), "xyz112");
        assert!(username("ab").is_err());
        assert!(username("has space").is_err());
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(text("name", "  Acme ", 10).unwrap(), "Acme");
        assert!(text("name", "   ", 10).is_err());
        assert!(text("name", "x".repeat(11).as_str(), 10).is_err());
    }
}
