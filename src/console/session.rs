//! The console's sessions: kept in the server's memory, named to the browser only by a random
//! id in an HttpOnly, SameSite=Strict cookie.
//!
//! A session keeps the API key the clerk signed in with, so that every page re-authenticates
//! it exactly as a gRPC call would: a key revoked while a session is open stops working
//! within the key cache's time, as it does over gRPC. The key never goes back to the browser.
//!
//! Sessions live in one process: several gateway replicas behind a load balancer need it to
//! keep each browser on one replica (`docs/console.md`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// How long sessions last and how many may be open.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub lifetime: Duration,
    /// The most sessions open at once; past it, sign-in waits for one to end.
    pub max_sessions: usize,
    /// The most sessions one key may have open; a new one ends that key's oldest.
    pub max_sessions_per_key: usize,
}

impl SessionLimits {
    /// 30 minutes idle, 12 hours at most (a working day), 10,000 sessions, 20 per key.
    pub const STANDARD: SessionLimits =
        SessionLimits { idle: Duration::from_secs(30 * 60), lifetime: Duration::from_secs(12 * 3600), max_sessions: 10_000, max_sessions_per_key: 20 };
}

/// What a page needs of its session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The API key signed in with.
    pub token: String,
    /// The token every state-changing form must carry back.
    pub csrf: String,
    started: Instant,
    last_used: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many console sessions are open; try again later")]
pub struct TooManySessions;

/// The open sessions.
pub struct Sessions {
    limits: SessionLimits,
    open: Mutex<HashMap<String, Session>>,
}

/// 256 random bits, as hex.
pub fn random_id() -> String {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("the operating system provides random bytes");
    hex::encode(random)
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions { limits, open: Mutex::new(HashMap::new()) }
    }

    fn alive(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_used) < self.limits.idle && now.duration_since(session.started) < self.limits.lifetime
    }

    /// Opens a session for `token`; its id goes in the cookie.
    pub fn open(&self, token: String, now: Instant) -> Result<(String, Session), TooManySessions> {
        let mut open = self.open.lock().expect("the session map is never poisoned");
        // One key cannot take every session: its oldest ends instead.
        let mut own: Vec<(String, Instant)> = open.iter().filter(|(_, s)| s.token == token).map(|(id, s)| (id.clone(), s.started)).collect();
        if own.len() >= self.limits.max_sessions_per_key {
            own.sort_by_key(|(_, started)| *started);
            for (id, _) in own.iter().take(own.len() + 1 - self.limits.max_sessions_per_key) {
                open.remove(id);
            }
        }
        if open.len() >= self.limits.max_sessions {
            open.retain(|_, session| self.alive(session, now));
            if open.len() >= self.limits.max_sessions {
                return Err(TooManySessions);
            }
        }
        let id = random_id();
        let session = Session { token, csrf: random_id(), started: now, last_used: now };
        open.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session `id` names, if it is still alive; using it restarts its idle time.
    pub fn touch(&self, id: &str, now: Instant) -> Option<Session> {
        let mut open = self.open.lock().expect("the session map is never poisoned");
        let session = open.get_mut(id)?;
        if !self.alive(session, now) {
            open.remove(id);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    /// Ends a session (sign-out, or a key found revoked).
    pub fn end(&self, id: &str) {
        self.open.lock().expect("the session map is never poisoned").remove(id);
    }

    /// Forgets sessions that have ended, so that the map holds only live ones.
    pub fn forget_ended(&self, now: Instant) {
        self.open.lock().expect("the session map is never poisoned").retain(|_, session| self.alive(session, now));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits =
        SessionLimits { idle: Duration::from_secs(60), lifetime: Duration::from_secs(600), max_sessions: 2, max_sessions_per_key: 2 };

    #[test]
    fn a_session_ends_when_idle_and_at_its_lifetime_however_used() {
        let sessions = Sessions::new(LIMITS);
        let start = Instant::now();
        let (id, _) = sessions.open("gwk_a".into(), start).unwrap();
        assert!(sessions.touch(&id, start + Duration::from_secs(59)).is_some());
        assert!(sessions.touch(&id, start + Duration::from_secs(118)).is_some(), "use restarts the idle time");
        assert!(sessions.touch(&id, start + Duration::from_secs(179)).is_none(), "idle past a minute");
        assert!(sessions.touch(&id, start + Duration::from_secs(1)).is_none(), "an ended session stays ended");

        let (id, _) = sessions.open("gwk_a".into(), start).unwrap();
        let mut now = start;
        while now + Duration::from_secs(50) < start + Duration::from_secs(600) {
            now += Duration::from_secs(50);
            assert!(sessions.touch(&id, now).is_some());
        }
        assert!(sessions.touch(&id, start + Duration::from_secs(600)).is_none(), "used all along, it still ends at its lifetime");
    }

    #[test]
    fn ids_and_csrf_tokens_are_random_and_sign_out_ends_the_session() {
        let sessions = Sessions::new(LIMITS);
        let now = Instant::now();
        let (first, one) = sessions.open("gwk_a".into(), now).unwrap();
        let (second, two) = sessions.open("gwk_a".into(), now).unwrap();
        assert_ne!(first, second);
        assert_ne!(one.csrf, two.csrf);
        assert_eq!(first.len(), 64);
        assert!(one.csrf_matches(&one.csrf) && !one.csrf_matches(&two.csrf) && !one.csrf_matches(""));
        sessions.end(&first);
        assert!(sessions.touch(&first, now).is_none());
        assert!(sessions.touch(&second, now).is_some());
    }

    #[test]
    fn a_key_opening_a_session_past_its_share_ends_its_own_oldest() {
        let sessions = Sessions::new(SessionLimits { max_sessions: 10, ..LIMITS });
        let now = Instant::now();
        let (first, _) = sessions.open("gwk_a".into(), now).unwrap();
        let (second, _) = sessions.open("gwk_a".into(), now + Duration::from_secs(1)).unwrap();
        let (other, _) = sessions.open("gwk_b".into(), now).unwrap();
        let (third, _) = sessions.open("gwk_a".into(), now + Duration::from_secs(2)).unwrap();
        let later = now + Duration::from_secs(3);
        assert!(sessions.touch(&first, later).is_none(), "the key's oldest ended");
        assert!(sessions.touch(&second, later).is_some() && sessions.touch(&third, later).is_some());
        assert!(sessions.touch(&other, later).is_some(), "another key's session is not touched");
    }

    #[test]
    fn the_number_of_sessions_is_bounded_and_ended_ones_make_room() {
        let sessions = Sessions::new(LIMITS);
        let now = Instant::now();
        sessions.open("gwk_a".into(), now).unwrap();
        sessions.open("gwk_b".into(), now).unwrap();
        assert_eq!(sessions.open("gwk_c".into(), now).unwrap_err(), TooManySessions);
        let later = now + Duration::from_secs(61);
        assert!(sessions.open("gwk_c".into(), later).is_ok(), "the idle ones were forgotten");
        assert_eq!(sessions.len(), 1);
        sessions.forget_ended(later + Duration::from_secs(61));
        assert_eq!(sessions.len(), 0);
    }
}
