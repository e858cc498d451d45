//! Basic auth against the web config's bcrypt hashes. bcrypt is slow on purpose (tens of
//! milliseconds a check), so it runs off the server's thread, and a user and password that
//! passed are remembered (by a keyed hash, never the password itself), as the exporter toolkit
//! does, so that a scrape every few seconds costs one check in all.
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// How many passing user and password pairs are remembered (forgotten all at once past it).
const REMEMBERED: usize = 64;

/// The users basic auth lets in.
pub struct Users {
    hashes: BTreeMap<String, String>,
    passed: Mutex<HashSet<u64>>,
    keyed: RandomState,
}

impl Users {
    pub fn new(hashes: BTreeMap<String, String>) -> Users {
        Users {
            hashes,
            passed: Mutex::new(HashSet::new()),
            keyed: RandomState::new(),
        }
    }

    /// Whether `user` with `password` may in.
    async fn check(self: &Arc<Self>, user: String, password: String) -> bool {
        // An unknown user is checked against a known hash too: the answer takes as long.
        let (known, hash) = match self.hashes.get(&user) {
            Some(h) => (true, h.clone()),
            None => match self.hashes.values().next() {
                Some(h) => (false, h.clone()),
                None => return false,
            },
        };
        let key = self.keyed.hash_one((&user, &password, &hash));
        if known && self.passed().contains(&key) {
            return true;
        }
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        if ok && known {
            let mut passed = self.passed();
            if passed.len() >= REMEMBERED {
                passed.clear();
            }
            passed.insert(key);
        }
        ok && known
    }

    fn passed(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.passed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The user and password of an `Authorization: Basic …` header.
fn credentials(value: &HeaderValue) -> Option<(String, String)> {
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Lets a request through with a user and password that pass, else answers 401.
pub async fn require(State(users): State<Arc<Users>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(credentials);
    let passed = match given {
        Some((user, password)) => users.check(user, password).await,
        None => false,
    };
    if passed {
        return next.run(request).await;
    }
    log::debug!(
        "a request for {} refused: no valid basic auth",
        request.uri().path()
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic")],
        "Unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Arc<Users> {
        let hash = bcrypt::hash("right", 4).unwrap();
        Arc::new(Users::new([("alice".to_string(), hash)].into()))
    }

    #[tokio::test]
    async fn the_right_password_passes_and_is_remembered() {
        let u = users();
        assert!(u.check("alice".into(), "right".into()).await);
        assert_eq!(u.passed().len(), 1);
        assert!(u.check("alice".into(), "right".into()).await);
        assert!(!u.check("alice".into(), "wrong".into()).await);
        assert!(!u.check("bob".into(), "right".into()).await, "unknown user");
        assert_eq!(u.passed().len(), 1);
    }

    #[test]
    fn the_header_is_read() {
        let v = HeaderValue::from_static("Basic YWxpY2U6cmlnaHQ6Y29sb24=");
        assert_eq!(
            credentials(&v),
            Some(("alice".to_string(), "right:colon".to_string()))
        );
        assert_eq!(credentials(&HeaderValue::from_static("Bearer x")), None);
        assert_eq!(credentials(&HeaderValue::from_static("Basic !!")), None);
    }
}
