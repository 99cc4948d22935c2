//! Password hashing with Argon2id (OWASP parameters), off the async runtime's threads.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use crate::errors::{AppError, AppResult};

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 256;

pub fn validate(password: &str) -> AppResult<()> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(AppError::bad_input(
            "password",
            format!("the password must have at least {MIN_LENGTH} characters"),
        ));
    }
    if chars > MAX_LENGTH {
        return Err(AppError::bad_input(
            "password",
            format!("the password must have at most {MAX_LENGTH} characters"),
        ));
    }
    Ok(())
}

pub async fn hash(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(anyhow::anyhow!("hashing failed: {e}")))
    })
    .await
    .map_err(AppError::internal)?
}

/// Checks a password against a stored hash. A malformed hash counts as a mismatch.
pub async fn verify(password: String, stored: String) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .map_err(AppError::internal)
}

/// A hash to verify against when the user does not exist, so that a login for an unknown
/// name takes as long as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"decoy-password-never-used", &salt)
            .expect("hashing a constant cannot fail")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".into(), stored.clone())
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), stored).await.unwrap());
        assert!(!verify("x".into(), "not a hash".into()).await.unwrap());
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate("short").is_err());
        assert!(validate("long enough").is_ok());
    }
}
