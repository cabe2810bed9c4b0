//! Bringing a connection up to date: hello, replay or a page, renames, threads, read positions.

use super::*;
use crate::limits::{REPLAY_BATCH, REPLAY_MAX_EVENTS};
use crate::protocol::{MessageView, UnreadCounts};

impl<D: Sql> Room<D> {
    /// For a client catching up by replay: the current names of authors renamed since the
    /// newest event it holds, so the messages it already holds show them too. (A client that
    /// gets a page instead gets current names in the page.)
    pub(super) fn renames_since(&self, after: Option<Seq>) -> Result<Vec<ServerMessage>, Failure> {
        let Some(after) = after.filter(|&a| a >= 1 && a <= self.head) else {
            return Ok(Vec::new());
        };
        let Some(held) = self.store.events_after(after - 1, 1)?.into_iter().next() else {
            return Ok(Vec::new());
        };
        Ok(self
            .store
            .renamed_since(held.at)?
            .into_iter()
            .map(|m| ServerMessage::ProfileUpdated {
                member: Member {
                    user_id: m.user_id,
                    name: m.name,
                    avatar: None,
                },
            })
            .collect())
    }

    /// The frames that bring a client holding everything up to `after` to the present: a
    /// replay of what it missed, or the latest page when it holds nothing or is too far off.
    pub fn sync(&self, after: Option<Seq>) -> Result<Vec<ServerMessage>, Failure> {
        let replayable = after.filter(|&a| a <= self.head && self.head - a <= REPLAY_MAX_EVENTS);
        match (after, replayable) {
            (_, Some(after)) => {
                let events = self.store.events_after(after, REPLAY_MAX_EVENTS as usize)?;
                if events.is_empty() {
                    return Ok(vec![ServerMessage::Replay { events, done: true }]);
                }
                let batches = events.chunks(REPLAY_BATCH).count();
                Ok(events
                    .chunks(REPLAY_BATCH)
                    .enumerate()
                    .map(|(i, chunk)| ServerMessage::Replay {
                        events: chunk.to_vec(),
                        done: i + 1 == batches,
                    })
                    .collect())
            }
            (requested, None) => {
                let (messages, has_more) =
                    self.store.messages_before(None, PAGE_DEFAULT as usize)?;
                Ok(vec![ServerMessage::History {
                    messages,
                    has_more,
                    reason: if requested.is_some() {
                        HistoryReason::Reset
                    } else {
                        HistoryReason::Latest
                    },
                }])
            }
        }
    }

    /// A thread: its root and newest replies (at most [`limits::THREAD_PAGE`]), and whether
    /// older replies exist. `root` may be any message of the thread. This is also the
    /// assistant's context for a question asked in a thread.
    pub fn thread(&self, root: Seq) -> Result<(MessageView, Vec<MessageView>, bool), Failure> {
        let not_found = || {
            Failure::Refused(ChatError::new(
                ErrorCode::NotFound,
                format!("Message {root} does not exist."),
            ))
        };
        let mut message = self.store.message(root)?.ok_or_else(not_found)?;
        if let Some(thread) = message.thread {
            message = self.store.message(thread)?.ok_or_else(not_found)?;
        }
        let (replies, has_more) = self
            .store
            .thread_replies(message.seq, limits::THREAD_PAGE)?;
        Ok((message, replies, has_more))
    }

    /// A member's unread counts after their read position.
    pub fn unread(&self, user_id: &str) -> Result<(Seq, UnreadCounts), Failure> {
        let read = self.store.read_position(user_id)?.unwrap_or(0);
        let counts = self.store.unread_counts(user_id, read)?;
        Ok((read, counts))
    }

    /// Moves a member's read position forward (never back, never past the head) and tells
    /// all their connections; a read that moves nothing answers the asking connection only.
    pub(super) fn read(&mut self, conn: &Conn, seq: Seq) -> Result<Vec<Effect>, Failure> {
        let user = &conn.author.id;
        let current = self.store.read_position(user)?.unwrap_or(0);
        let seq = seq.min(self.head);
        let moved = seq > current;
        if moved {
            self.store.set_read_position(user, seq)?;
        }
        let (read, counts) = self.unread(user)?;
        let frame = ServerMessage::Unread { read, counts };
        Ok(if moved {
            vec![
                Effect::NotifyUser(user.clone(), frame.clone()),
                Effect::ToUser(user.clone(), frame),
            ]
        } else {
            vec![Effect::Reply(frame)]
        })
    }
}
