//! The edge cache (the Cache API) for what is public and hot: avatars, profile cards and the
//! list of public rooms. Each is keyed by a URL of our own making ([`Entry::key`]), never the
//! request's, so no client can choose what is stored or under which key; who may see an entry is
//! still checked on every request before the cache is read.
//!
//! A response from here carries an `ETag` (a hash of its body) and answers a matching
//! `If-None-Match` with 304, and `X-Cache: hit` or `miss` (the bench counts them). The data's
//! writers purge their entry when it changes ([`purge`]). The Cache API is per data center, so
//! a purge clears the copy where it runs; elsewhere an entry lives out its `max_age`, which is
//! why mutable entries are kept for seconds, not hours. (In production the Cache API needs the
//! Worker on a custom domain; on `workers.dev` every read is a miss, which is still correct.)

use sha2::{Digest, Sha256};
use worker::{console_error, Cache, Headers, Request, Response};

use crate::http::ApiResult;

/// Something the edge cache keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    /// An avatar image (`/api/avatars/{user}/{id}`): a new upload gets a new id, so an entry
    /// never changes.
    Avatar {
        /// Whose.
        user: &'a str,
        /// Which upload.
        id: &'a str,
    },
    /// A user's public profile card (`/api/users/{user}`).
    ProfileCard {
        /// Whose.
        user: &'a str,
    },
    /// The rooms everyone may see (the shared part of `GET /api/rooms`).
    PublicRooms,
}

/// The host of the cache's keys: not a real one, so a key can never be a URL someone fetches.
const KEY_BASE: &str = "https://edge-cache.durable-chat.invalid";

impl Entry<'_> {
    /// The entry's cache key.
    pub fn key(&self) -> String {
        match self {
            Entry::Avatar { user, id } => format!("{KEY_BASE}/v1/avatars/{user}/{id}"),
            Entry::ProfileCard { user } => format!("{KEY_BASE}/v1/users/{user}"),
            Entry::PublicRooms => format!("{KEY_BASE}/v1/rooms/public"),
        }
    }

    /// Seconds the edge keeps it.
    fn max_age(&self) -> u32 {
        match self {
            Entry::Avatar { .. } => 31_536_000,
            // A rename or a new avatar is purged where it happens and reaches other locations
            // within a minute.
            Entry::ProfileCard { .. } => 60,
            // Activity (message counts, last activity, the order) is written by the rooms'
            // alarms, which are not purges: a short life keeps the list within seconds of them
            // while a busy directory is still read once per 5 s per location, not per reader.
            Entry::PublicRooms => 5,
        }
    }

    /// What the browser is told: an avatar forever (its URL changes with it); the rest must be
    /// revalidated, which the `ETag` makes cheap.
    fn browser_cache_control(&self) -> &'static str {
        match self {
            Entry::Avatar { .. } => "public, max-age=31536000, immutable",
            Entry::ProfileCard { .. } | Entry::PublicRooms => "private, no-cache",
        }
    }
}

/// A strong `ETag` for a body: the first 128 bits of its SHA-256, quoted.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// The entity tags an `If-None-Match` header lists, bare (no weak prefix, no quotes: RFC 9110
/// compares them weakly, by value); `None` stands for `*`, which matches any.
pub fn none_match_tags(header: &str) -> impl Iterator<Item = Option<&str>> {
    header
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| (t != "*").then(|| bare_tag(t)))
}

fn bare_tag(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Whether an `If-None-Match` header names `tag`.
pub fn matches(if_none_match: Option<&str>, tag: &str) -> bool {
    let tag = bare_tag(tag);
    if_none_match.is_some_and(|header| none_match_tags(header).any(|t| t.is_none_or(|t| t == tag)))
}

/// Serves `entry` from the edge cache, or builds it with `make` (whose 200 answer is stored),
/// then answers 304 when the request already holds this version.
pub async fn serve<F>(req: &Request, entry: &Entry<'_>, make: F) -> ApiResult
where
    F: std::future::Future<Output = ApiResult>,
{
    let key = entry.key();
    let cache = Cache::default();
    let (mut response, hit) = match cache.get(key.as_str(), false).await {
        // A cached response's headers are immutable: it gets a copy of its own.
        Ok(Some(response)) => {
            let headers = Headers::new();
            for (name, value) in response.headers() {
                headers.set(&name, &value)?;
            }
            (response.with_headers(headers), true)
        }
        other => {
            if let Err(e) = other {
                // A cache that fails is a miss, never an error for the reader.
                console_error!("edge cache read of {key} failed: {e}");
            }
            let mut response = make.await?;
            if response.status_code() == 200 {
                let body = response.cloned()?.bytes().await?;
                let tag = etag(&body);
                let headers = response.headers_mut();
                headers.set("ETag", &tag)?;
                headers.set(
                    "Cache-Control",
                    &format!("public, max-age={}", entry.max_age()),
                )?;
                if let Err(e) = cache.put(key.as_str(), response.cloned()?).await {
                    console_error!("edge cache write of {key} failed: {e}");
                }
            }
            (response, false)
        }
    };
    let tag = response.headers().get("ETag")?;
    let headers = response.headers_mut();
    headers.set("Cache-Control", entry.browser_cache_control())?;
    headers.set("X-Cache", if hit { "hit" } else { "miss" })?;
    match tag {
        Some(tag) if matches(req.headers().get("If-None-Match")?.as_deref(), &tag) => {
            let mut not_modified = Response::empty()?.with_status(304);
            let headers = not_modified.headers_mut();
            headers.set("ETag", &tag)?;
            headers.set("Cache-Control", entry.browser_cache_control())?;
            headers.set("X-Cache", if hit { "hit" } else { "miss" })?;
            Ok(not_modified)
        }
        _ => Ok(response),
    }
}

/// `entry` as data, from the edge cache or made by `make` (and then stored): for an entry that
/// is one part of a response, like the public rooms of a user's room list. True with a hit.
pub async fn json<T, F>(entry: &Entry<'_>, make: F) -> worker::Result<(T, bool)>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    F: std::future::Future<Output = worker::Result<T>>,
{
    let key = entry.key();
    let cache = Cache::default();
    match cache.get(key.as_str(), false).await {
        Ok(Some(mut hit)) => match hit.json::<T>().await {
            Ok(value) => return Ok((value, true)),
            Err(e) => console_error!("edge cache entry {key} unreadable, made again: {e}"),
        },
        Ok(None) => {}
        Err(e) => console_error!("edge cache read of {key} failed: {e}"),
    }
    let value = make.await?;
    let mut response = Response::from_json(&value)?;
    response.headers_mut().set(
        "Cache-Control",
        &format!("public, max-age={}", entry.max_age()),
    )?;
    if let Err(e) = cache.put(key.as_str(), response).await {
        console_error!("edge cache write of {key} failed: {e}");
    }
    Ok((value, false))
}

/// Drops `entry` from this location's edge cache (its data changed). Never fails the change
/// that called it: an entry not purged expires within its `max_age`.
pub async fn purge(entry: &Entry<'_>) {
    let key = entry.key();
    if let Err(e) = Cache::default().delete(key.as_str(), false).await {
        console_error!("edge cache purge of {key} failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_is_quoted_stable_and_differs_with_the_body() {
        let a = etag(b"{\"name\":\"Ann\"}");
        assert_eq!(a, etag(b"{\"name\":\"Ann\"}"));
        assert_ne!(a, etag(b"{\"name\":\"Bob\"}"));
        assert!(
            a.starts_with('"') && a.ends_with('"') && a.len() == 34,
            "{a}"
        );
    }

    #[test]
    fn if_none_match_compares_lists_weak_tags_and_the_wildcard() {
        let tag = "\"abc\"";
        assert!(matches(Some("\"abc\""), tag));
        assert!(matches(Some("\"x\", W/\"abc\""), tag));
        assert!(matches(Some("*"), tag));
        assert!(!matches(Some("\"abd\""), tag));
        assert!(!matches(None, tag));
    }

    #[test]
    fn keys_are_ours_and_distinct_per_entry() {
        let keys = [
            Entry::Avatar {
                user: "u1",
                id: "a",
            }
            .key(),
            Entry::Avatar {
                user: "u1",
                id: "b",
            }
            .key(),
            Entry::ProfileCard { user: "u1" }.key(),
            Entry::PublicRooms.key(),
        ];
        for (i, key) in keys.iter().enumerate() {
            assert!(key.starts_with(KEY_BASE), "{key}");
            assert!(!keys[i + 1..].contains(key), "{key} twice");
        }
    }

    #[test]
    fn only_avatars_are_cached_by_browsers_without_asking_again() {
        assert!(Entry::Avatar { user: "u", id: "a" }
            .browser_cache_control()
            .contains("immutable"));
        assert_eq!(
            Entry::ProfileCard { user: "u" }.browser_cache_control(),
            "private, no-cache"
        );
    }
}
