//! What the app needs to start without the server: the last session it had and the room list
//! it last showed (issue 12: "a reload while offline shows the app with the cached rooms").
//!
//! The service worker brings the page back offline, and IndexedDB holds each room's messages
//! and outbox, but the page first asks the server who is signed in and which rooms there are.
//! When that question gets no answer at all (not a refusal: the network is down), the app
//! starts from this snapshot instead and keeps asking; the server's answer replaces it.
//!
//! It lives in `localStorage` (a few kilobytes, read synchronously at start) and is deleted
//! whenever the session ends or is signed out, like the offline copy of the rooms, so the next
//! person on the browser never sees the previous one's room names.

use serde::{Deserialize, Serialize};
use shared::protocol::http::SessionInfo;
use shared::protocol::RoomInfo;

/// The `localStorage` key. assets/boot.js reads whether it is there: a browser with a session
/// starts the chat bundle without the sign-in prompt's.
pub const KEY: &str = "dc_offline";

/// The last session and room list the server gave this browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub session: SessionInfo,
    #[serde(default)]
    pub rooms: Vec<RoomInfo>,
}

impl Snapshot {
    /// The stored text back as a snapshot; anything unreadable (an older shape, a hand edit)
    /// is as good as none.
    pub fn decode(text: &str) -> Option<Snapshot> {
        serde_json::from_str(text).ok()
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The snapshot after the server listed `rooms` for `user_id`; none when it belongs to
    /// someone else (a list that arrives after another person signed in).
    pub fn with_rooms(self, user_id: &str, rooms: Vec<RoomInfo>) -> Option<Snapshot> {
        self.belongs_to(user_id)
            .then_some(Snapshot { rooms, ..self })
    }

    pub fn belongs_to(&self, user_id: &str) -> bool {
        self.session.user_id == user_id
    }
}

#[cfg(target_arch = "wasm32")]
mod storage {
    use super::{Snapshot, KEY};
    use shared::protocol::http::SessionInfo;
    use shared::protocol::RoomInfo;

    fn local() -> Option<web_sys::Storage> {
        crate::web::window().local_storage().ok().flatten()
    }

    /// The stored snapshot, if there is a readable one.
    pub fn last() -> Option<Snapshot> {
        Snapshot::decode(&local()?.get_item(KEY).ok()??)
    }

    fn store(snapshot: &Snapshot) {
        if let Some(storage) = local() {
            // Full or disabled storage only costs the offline start.
            let _ = storage.set_item(KEY, &snapshot.encode());
        }
    }

    /// The server confirmed this session: keep it, with the rooms already kept if they are
    /// the same person's.
    pub fn remember_session(session: &SessionInfo) {
        let rooms = last()
            .filter(|s| s.belongs_to(&session.user_id))
            .map(|s| s.rooms)
            .unwrap_or_default();
        store(&Snapshot {
            session: session.clone(),
            rooms,
        });
    }

    /// The server listed these rooms for `user_id`.
    pub fn remember_rooms(user_id: &str, rooms: &[RoomInfo]) {
        if let Some(snapshot) = last().and_then(|s| s.with_rooms(user_id, rooms.to_vec())) {
            store(&snapshot);
        }
    }

    /// The session ended or was signed out.
    pub fn forget() {
        if let Some(storage) = local() {
            let _ = storage.remove_item(KEY);
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use storage::{forget, last, remember_rooms, remember_session};

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user_id: &str) -> SessionInfo {
        SessionInfo {
            user_id: user_id.into(),
            name: "Alice".into(),
            signed_in: true,
            providers: Vec::new(),
        }
    }

    fn room(slug: &str) -> RoomInfo {
        serde_json::from_value(serde_json::json!({ "slug": slug, "name": slug, "created_at": 0 }))
            .expect("a room needs its slug, name and creation time")
    }

    #[test]
    fn a_snapshot_reads_back_as_it_was_written() {
        let snapshot = Snapshot {
            session: session("u1"),
            rooms: vec![room("general")],
        };
        assert_eq!(Snapshot::decode(&snapshot.encode()), Some(snapshot));
    }

    #[test]
    fn unreadable_text_is_no_snapshot_rather_than_an_error() {
        assert_eq!(Snapshot::decode(""), None);
        assert_eq!(Snapshot::decode("{\"rooms\": []}"), None);
        assert_eq!(Snapshot::decode("not json"), None);
    }

    #[test]
    fn a_room_list_for_someone_else_does_not_replace_the_snapshot() {
        let snapshot = Snapshot {
            session: session("u1"),
            rooms: vec![room("general")],
        };
        assert_eq!(
            snapshot.clone().with_rooms("u2", vec![room("secret")]),
            None
        );
        let updated = snapshot.with_rooms("u1", vec![room("random")]).unwrap();
        assert_eq!(updated.rooms, vec![room("random")]);
    }
}
