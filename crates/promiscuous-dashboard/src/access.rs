//! Who may act: the token, the sessions opened with it and their CSRF tokens.
//!
//! - No token configured: read-only, every action refused.
//! - `POST /login` with the token opens a session: a random id in a cookie (`HttpOnly`,
//!   `SameSite=Strict`) and, with it, a random CSRF token that the pages put in every form. An
//!   action needs a live session and its CSRF token (the synchronizer-token pattern: another
//!   site can make a browser send the cookie, never read the token).
//! - `Authorization: Bearer TOKEN` on the action itself (scripts, curl) needs no session or CSRF
//!   token: a browser never sends that header on another site's behalf.
//!
//! A leaf: no HTTP types beyond the header values it reads.

use std::collections::VecDeque;
use std::sync::Mutex;

/// The cookie holding the session id.
pub const COOKIE: &str = "promiscuous_dashboard";
/// Sessions kept at most; the oldest is forgotten first.
const MAX_SESSIONS: usize = 256;

pub struct Access {
    token: Option<String>,
    /// `(session id, CSRF token)`, oldest first.
    sessions: Mutex<VecDeque<(String, String)>>,
}

/// What a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// No token is configured: nobody may act.
    ReadOnly,
    /// A token is configured, this request has no session.
    Anonymous,
    /// A session: actions allowed with this CSRF token.
    Session { csrf: String },
    /// The token in an `Authorization: Bearer` header: actions allowed.
    Bearer,
}

/// Why an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ReadOnly,
    NotLoggedIn,
    BadCsrf,
}

impl Refusal {
    pub fn text(self) -> &'static str {
        match self {
            Refusal::ReadOnly => {
                "read-only: this dashboard has no token (Dashboard::token, --token), so nobody \
                 may act"
            }
            Refusal::NotLoggedIn => "enter the dashboard's token first (or send it as Bearer)",
            Refusal::BadCsrf => {
                "the form's CSRF token does not match this session: reload the page and retry"
            }
        }
    }
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Compares in time independent of where the first difference is.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    pub fn new(token: Option<String>) -> Self {
        Self {
            token,
            sessions: Mutex::new(VecDeque::new()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, String)>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a request with this `Cookie` and `Authorization` header may do.
    pub fn grant(&self, cookie: Option<&str>, authorization: Option<&str>) -> Grant {
        let Some(token) = &self.token else {
            return Grant::ReadOnly;
        };
        // The scheme's name is case-insensitive (RFC 9110).
        let bearer = authorization.and_then(|a| {
            let (scheme, given) = a.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(given)
        });
        if let Some(given) = bearer
            && same(given.trim(), token)
        {
            return Grant::Bearer;
        }
        let Some(id) = cookie.and_then(session_cookie) else {
            return Grant::Anonymous;
        };
        match self.sessions().iter().find(|(s, _)| same(s, id)) {
            Some((_, csrf)) => Grant::Session { csrf: csrf.clone() },
            None => Grant::Anonymous,
        }
    }

    /// Whether `grant` may act with the CSRF token `csrf` from the form.
    pub fn may_act(&self, grant: &Grant, csrf: Option<&str>) -> Result<(), Refusal> {
        match grant {
            Grant::ReadOnly => Err(Refusal::ReadOnly),
            Grant::Anonymous => Err(Refusal::NotLoggedIn),
            Grant::Bearer => Ok(()),
            Grant::Session { csrf: expected } => match csrf {
                Some(given) if same(given, expected) => Ok(()),
                _ => Err(Refusal::BadCsrf),
            },
        }
    }

    /// Opens a session if `token` is the dashboard's: its id, for the cookie.
    pub fn login(&self, token: &str) -> Result<String, Refusal> {
        match &self.token {
            None => Err(Refusal::ReadOnly),
            Some(expected) if same(token.trim(), expected) => {
                let id = random();
                let mut sessions = self.sessions();
                if sessions.len() == MAX_SESSIONS {
                    sessions.pop_front();
                }
                sessions.push_back((id.clone(), random()));
                Ok(id)
            }
            Some(_) => Err(Refusal::NotLoggedIn),
        }
    }

    /// Ends the session of this cookie, if any.
    pub fn logout(&self, cookie: Option<&str>) {
        if let Some(id) = cookie.and_then(session_cookie) {
            self.sessions().retain(|(s, _)| !same(s, id));
        }
    }
}

/// The session id in a `Cookie` header.
fn session_cookie(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_token_nobody_acts() {
        let access = Access::new(None);
        assert_eq!(access.grant(None, Some("Bearer x")), Grant::ReadOnly);
        assert_eq!(access.login(""), Err(Refusal::ReadOnly));
        assert_eq!(
            access.may_act(&Grant::ReadOnly, Some("x")),
            Err(Refusal::ReadOnly)
        );
    }

    #[test]
    fn a_session_acts_only_with_its_csrf_token() {
        let access = Access::new(Some("s3cret".into()));
        assert_eq!(access.login("wrong"), Err(Refusal::NotLoggedIn));
        let id = access.login("s3cret").expect("the token opens a session");
        let cookie = format!("other=1; {COOKIE}={id}");
        let grant = access.grant(Some(&cookie), None);
        let Grant::Session { csrf } = &grant else {
            panic!("a session: {grant:?}")
        };
        assert_eq!(access.may_act(&grant, Some(csrf)), Ok(()));
        assert_eq!(access.may_act(&grant, None), Err(Refusal::BadCsrf));
        assert_eq!(access.may_act(&grant, Some("guess")), Err(Refusal::BadCsrf));
        access.logout(Some(&cookie));
        assert_eq!(access.grant(Some(&cookie), None), Grant::Anonymous);
    }

    #[test]
    fn the_bearer_token_acts_without_a_session() {
        let access = Access::new(Some("s3cret".into()));
        assert_eq!(access.grant(None, Some("Bearer s3cret")), Grant::Bearer);
        assert_eq!(access.grant(None, Some("bearer s3cret")), Grant::Bearer);
        assert_eq!(access.grant(None, Some("Bearer s3cre")), Grant::Anonymous);
        assert_eq!(
            access.grant(Some("promiscuous_dashboard=forged"), None),
            Grant::Anonymous
        );
    }
}
