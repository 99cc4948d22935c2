//! Sessions checked recently, so that a busy client's requests do not each cost the
//! database round trips of looking up its user and its membership.
//!
//! Only what the database said is kept (the token itself is verified on every request),
//! and only for a short time. Changes that take rights away (a new password, a role change,
//! a deactivated member, an archived project) clear the cache of this process as soon as
//! they are committed; another server process sees them when its entries expire.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use uuid::Uuid;

use super::context::{NoScope, Scope};

/// How long a checked session is trusted without asking the database again: what another
/// server process's change may take to reach this one.
pub const SESSION_TTL: Duration = Duration::from_secs(2);

/// Beyond this many sessions the cache starts afresh rather than growing.
const MAX_ENTRIES: usize = 10_000;

/// A session as the token names it: user, token version and the selected project.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub user_id: Uuid,
    pub token_version: i32,
    pub project_id: Option<Uuid>,
}

/// What the database said about a session.
#[derive(Clone, Debug)]
pub struct CheckedSession {
    pub username: String,
    pub scope: Result<Scope, NoScope>,
}

/// Taken before reading the database; an entry read before a change is not stored after it.
#[derive(Clone, Copy, Debug)]
pub struct Generation(u64);

pub struct CredentialCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: HashMap<SessionKey, (Instant, CheckedSession)>,
}

impl CredentialCache {
    /// A `ttl` of zero keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent whatever a panicking holder did: it only inserts whole
        // entries or clears.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &SessionKey) -> Option<CheckedSession> {
        let inner = self.lock();
        let (stored, session) = inner.entries.get(key)?;
        (stored.elapsed() < self.ttl).then(|| session.clone())
    }

    pub fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    /// Keeps `session`, unless the cache was cleared since `read_at` was taken.
    pub fn insert(&self, key: SessionKey, session: CheckedSession, read_at: Generation) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != read_at.0 {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            inner
                .entries
                .retain(|_, (stored, _)| stored.elapsed() < ttl);
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
        }
        inner.entries.insert(key, (Instant::now(), session));
    }

    /// Forgets every session: call after committing a change to users, members or projects.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn key() -> SessionKey {
        SessionKey {
            user_id: Uuid::now_v7(),
            token_version: 0,
            project_id: Some(Uuid::now_v7()),
        }
    }

    fn session(role: Role) -> CheckedSession {
        CheckedSession {
            username: "asha".into(),
            scope: Ok(Scope {
                project_id: Uuid::now_v7(),
                role,
                archived: false,
                user_id: Some(Uuid::now_v7()),
                api_key_id: None,
            }),
        }
    }

    fn role(s: &CheckedSession) -> Role {
        s.scope.as_ref().unwrap().role
    }

    #[test]
    fn entries_last_their_time_only() {
        let cache = CredentialCache::new(Duration::from_millis(50));
        let k = key();
        cache.insert(k.clone(), session(Role::Agent), cache.generation());
        assert_eq!(role(&cache.get(&k).unwrap()), Role::Agent);
        assert!(cache.get(&key()).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&k).is_none());
    }

    #[test]
    fn a_read_from_before_a_clear_is_not_kept() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        let k = key();
        cache.insert(k.clone(), session(Role::Owner), cache.generation());
        let before_change = cache.generation();
        cache.clear();
        assert!(cache.get(&k).is_none());
        cache.insert(k.clone(), session(Role::Owner), before_change);
        assert!(cache.get(&k).is_none());
        cache.insert(k.clone(), session(Role::Agent), cache.generation());
        assert_eq!(role(&cache.get(&k).unwrap()), Role::Agent);
    }

    #[test]
    fn no_time_to_live_keeps_nothing() {
        let cache = CredentialCache::new(Duration::ZERO);
        let k = key();
        cache.insert(k.clone(), session(Role::Owner), cache.generation());
        assert!(cache.get(&k).is_none());
    }
}
