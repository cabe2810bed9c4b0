//! Coalescing a burst per socket: while a short window is open, frames for a socket that asked
//! for batches ([`crate::protocol::BATCH_QUERY`]) wait in its queue and leave together, one
//! WebSocket message per socket per window, as Cloudflare advises for Durable Object fan-out
//! (each `send` costs the object far more than the bytes it carries).
//!
//! The rules that keep this safe:
//! - a socket's frames leave in the order they were offered, whatever path offered them;
//! - a reply to a socket (an ack, its welcome and history, an error) leaves at once, behind
//!   whatever was queued for that socket, so an ack never overtakes the events it follows and
//!   never waits for the window;
//! - a socket that did not ask gets every frame at once, alone, as before;
//! - the first frame after a quiet period leaves at once and opens the window: a lone message
//!   is never delayed; only a burst is.
//!
//! The caller owns the sockets and the timer: it sends what these methods return, and while
//! [`Outbox::take_opened`] says a window opened it calls [`Outbox::flush`] every few
//! milliseconds until a flush finds nothing queued, which closes the window.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::rc::Rc;

use crate::protocol::batch_frame;

/// How long a window stays open before its queues leave, in milliseconds.
pub const COALESCE_MS: u64 = 4;

/// A multiply-rotate hash (rustc's FxHash) for keys the server assigns itself, such as socket
/// ids: every fan-out hashes one key per socket per message, and the standard SipHash showed
/// in the room's CPU profile. Not resistant to chosen keys, so never for client input.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by server-assigned ids, with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Per-socket queues of serialized server messages.
#[derive(Debug)]
pub struct Outbox<K> {
    open: bool,
    opened: bool,
    queues: IdMap<K, Vec<Rc<str>>>,
}

impl<K> Default for Outbox<K> {
    fn default() -> Self {
        Outbox {
            open: false,
            opened: false,
            queues: IdMap::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> Outbox<K> {
    /// A new outbox, its window closed.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame for socket `to` (`batch`: it asked for batches). Returns what to send to it now,
    /// if anything; otherwise it waits for the next [`Outbox::flush`].
    pub fn offer(&mut self, to: &K, batch: bool, message: &Rc<str>) -> Option<Rc<str>> {
        if !batch {
            return Some(Rc::clone(message));
        }
        if self.open {
            self.queues
                .entry(to.clone())
                .or_default()
                .push(Rc::clone(message));
            return None;
        }
        // A quiet room: this frame leaves now (to every socket it is for), and what follows it
        // soon is coalesced once the caller opens the window with `take_opened`.
        self.opened = true;
        Some(Rc::clone(message))
    }

    /// A reply to socket `to` (an ack, an answer to a request): for a batching socket while a
    /// window is open, it joins that socket's queue (a sender in a burst gets its acks with the
    /// room's events, a frame per window instead of one per message); otherwise it leaves now.
    /// Either way it never overtakes what was queued for that socket before it.
    pub fn reply(&mut self, to: &K, batch: bool, message: &Rc<str>) -> Option<Rc<str>> {
        if batch && self.open {
            self.queues
                .entry(to.clone())
                .or_default()
                .push(Rc::clone(message));
            return None;
        }
        Some(match self.queues.remove(to) {
            Some(mut queued) if batch => {
                queued.push(Rc::clone(message));
                Rc::from(batch_frame(&queued))
            }
            _ => Rc::clone(message),
        })
    }

    /// Called after each fan-out: opens the window if that fan-out left at once, and says so;
    /// the caller then starts flushing. (Not opened inside `offer`, so one message offered to
    /// many sockets leaves at once to all of them.)
    pub fn take_opened(&mut self) -> bool {
        if std::mem::take(&mut self.opened) {
            self.open = true;
            return true;
        }
        false
    }

    /// Whether frames are being coalesced now.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Everything queued, one frame per socket. A flush that finds nothing closes the window
    /// (the burst is over; the next frame leaves at once again).
    pub fn flush(&mut self) -> Vec<(K, String)> {
        if self.queues.is_empty() {
            self.open = false;
            return Vec::new();
        }
        self.queues
            .drain()
            .map(|(to, queued)| (to, batch_frame(&queued)))
            .collect()
    }

    /// What is queued for socket `to`, as one frame, before it is closed.
    pub fn take(&mut self, to: &K) -> Option<String> {
        self.queues.remove(to).map(|queued| batch_frame(&queued))
    }

    /// Drops what is queued for a socket that is gone.
    pub fn forget(&mut self, to: &K) {
        self.queues.remove(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_frames, ServerMessage};

    fn text(s: &str) -> Rc<str> {
        Rc::from(s)
    }

    fn ack(n: u64) -> Rc<str> {
        text(&format!(
            r#"{{"type":"ack","client_id":"c{n}","seq":{n},"duplicate":false}}"#
        ))
    }

    fn typing(n: u64) -> Rc<str> {
        text(&format!(
            r#"{{"type":"typing","user_id":"u{n}","name":"N{n}"}}"#
        ))
    }

    /// The messages a socket received over these frames, in order.
    fn decoded(frames: &[String]) -> Vec<ServerMessage> {
        frames
            .iter()
            .flat_map(|f| decode_frames(f).expect("a frame the client can read"))
            .collect()
    }

    fn expected(texts: &[Rc<str>]) -> Vec<ServerMessage> {
        texts
            .iter()
            .map(|t| serde_json::from_str(t).expect("a valid message"))
            .collect()
    }

    #[test]
    fn the_first_frame_after_a_quiet_period_leaves_at_once_and_opens_a_window() {
        let mut outbox = Outbox::new();
        assert_eq!(
            outbox.offer(&1, true, &typing(1)).as_deref(),
            Some(&*typing(1))
        );
        assert_eq!(
            outbox.offer(&2, true, &typing(1)).as_deref(),
            Some(&*typing(1))
        );
        assert!(outbox.take_opened());
        assert!(!outbox.take_opened(), "one window, one flusher");
        assert_eq!(outbox.offer(&1, true, &typing(2)), None);
    }

    #[test]
    fn a_burst_reaches_each_socket_complete_and_in_order_in_one_frame_per_window() {
        let mut outbox = Outbox::new();
        let mut got: HashMap<u32, Vec<String>> = HashMap::new();
        let sent: Vec<Rc<str>> = (1..=20).map(typing).collect();
        for message in &sent {
            for socket in [1, 2, 3] {
                if let Some(frame) = outbox.offer(&socket, true, message) {
                    got.entry(socket).or_default().push(frame.to_string());
                }
            }
            outbox.take_opened();
        }
        for (socket, frame) in outbox.flush() {
            got.entry(socket).or_default().push(frame);
        }
        for socket in [1, 2, 3] {
            let frames = &got[&socket];
            assert_eq!(frames.len(), 2, "the first alone, the other 19 together");
            assert_eq!(decoded(frames), expected(&sent));
        }
    }

    #[test]
    fn a_socket_that_did_not_ask_gets_every_frame_alone_and_at_once() {
        let mut outbox = Outbox::new();
        outbox.offer(&1, true, &typing(0));
        outbox.take_opened();
        for n in 1..=5 {
            let frame = outbox.offer(&2, false, &typing(n));
            assert_eq!(frame.as_deref(), Some(&*typing(n)));
        }
        assert_eq!(outbox.reply(&2, false, &ack(9)), Some(ack(9)));
        assert!(outbox.flush().is_empty(), "nothing was queued for either");
    }

    #[test]
    fn in_an_open_window_a_reply_joins_its_sockets_queue_behind_the_frames_queued_before_it() {
        let mut outbox = Outbox::new();
        outbox.offer(&1, true, &typing(1));
        outbox.take_opened();
        outbox.offer(&1, true, &typing(2));
        outbox.offer(&2, true, &typing(2));
        outbox.offer(&1, true, &typing(3));
        assert_eq!(outbox.reply(&1, true, &ack(3)), None);
        outbox.offer(&1, true, &typing(4));
        let mut flushed = outbox.flush();
        flushed.sort();
        assert_eq!(flushed.len(), 2);
        assert_eq!(
            decoded(&[flushed[0].1.clone()]),
            expected(&[typing(2), typing(3), ack(3), typing(4)])
        );
        assert_eq!(flushed[1], (2, typing(2).to_string()));
    }

    #[test]
    fn a_reply_leaves_at_once_to_a_socket_that_does_not_batch_or_when_the_room_is_quiet() {
        let mut outbox = Outbox::new();
        assert_eq!(outbox.reply(&1, true, &ack(1)), Some(ack(1)));
        outbox.offer(&1, true, &typing(1));
        outbox.take_opened();
        assert_eq!(outbox.reply(&2, false, &ack(2)), Some(ack(2)));
        // The window closes after a flush that finds nothing; then replies leave at once.
        outbox.flush();
        outbox.flush();
        assert!(!outbox.is_open());
        assert_eq!(outbox.reply(&1, true, &ack(3)), Some(ack(3)));
    }

    #[test]
    fn a_flush_that_finds_nothing_closes_the_window() {
        let mut outbox = Outbox::new();
        outbox.offer(&1, true, &typing(1));
        outbox.take_opened();
        outbox.offer(&1, true, &typing(2));
        assert_eq!(outbox.flush().len(), 1);
        assert!(outbox.is_open(), "traffic continued: keep coalescing");
        assert!(outbox.flush().is_empty());
        assert!(!outbox.is_open());
        assert!(outbox.offer(&1, true, &typing(3)).is_some());
        assert!(outbox.take_opened());
    }

    #[test]
    fn a_closing_socket_takes_its_queue_and_a_gone_one_drops_it() {
        let mut outbox = Outbox::new();
        outbox.offer(&1, true, &typing(1));
        outbox.take_opened();
        outbox.offer(&1, true, &typing(2));
        outbox.offer(&2, true, &typing(2));
        assert_eq!(outbox.take(&1), Some(typing(2).to_string()));
        assert_eq!(outbox.take(&1), None);
        outbox.forget(&2);
        assert!(outbox.flush().is_empty());
    }

    #[test]
    fn a_batch_frame_is_a_json_array_an_old_client_would_not_misread_as_one_message() {
        let frame = batch_frame(&[typing(1), ack(1)]);
        assert!(frame.starts_with('[') && frame.ends_with(']'));
        assert!(serde_json::from_str::<ServerMessage>(&frame).is_err());
        assert_eq!(
            decode_frames(&frame).unwrap(),
            expected(&[typing(1), ack(1)])
        );
        assert_eq!(
            batch_frame(&[ack(1)]),
            ack(1).to_string(),
            "one message is not wrapped"
        );
    }
}
