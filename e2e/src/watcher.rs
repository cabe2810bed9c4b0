//! A room socket with the app's own client state machine ([`ClientRoom`]) applying every frame,
//! so tests see the room as the app would: messages, answers as they stream, the outbox.

use shared::client::{ClientRoom, PendingOp, Phase};
use shared::protocol::{AnswerState, MessageView, Seq, ServerMessage};

use crate::client::{RoomSocket, DEFAULT_TIMEOUT};
use crate::{Result, Session};

/// A socket with the app's own client state machine applying every frame.
pub struct Watcher {
    /// The socket.
    pub socket: RoomSocket,
    /// The client state.
    pub room: ClientRoom,
    /// Every frame received, in order.
    pub frames: Vec<ServerMessage>,
    /// Client ids are this and a counter: unique per watcher, since the room de-duplicates a
    /// user's mutations by client id (a second watcher of the same user counting from 1
    /// would only get acks for the first one's messages).
    id_prefix: String,
    next_id: u32,
}

impl Watcher {
    pub async fn join(session: &Session, slug: &str) -> Result<Watcher> {
        Watcher::rejoin(session, slug, ClientRoom::new()).await
    }

    /// Joins with what an earlier connection held (its cursor and messages).
    pub async fn rejoin(session: &Session, slug: &str, mut room: ClientRoom) -> Result<Watcher> {
        let mut socket = session.connect(slug).await?;
        socket.send_message(&room.connect()).await?;
        let mut w = Watcher {
            socket,
            room,
            frames: Vec::new(),
            id_prefix: crate::unique("op"),
            next_id: 0,
        };
        w.until(|r| r.phase() == Phase::Live).await?;
        Ok(w)
    }

    /// Reads and applies frames until `done` holds (or fails after the default timeout).
    pub async fn until(&mut self, mut done: impl FnMut(&ClientRoom) -> bool) -> Result {
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        while !done(&self.room) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.socket.next_message(left).await?;
            self.frames.push(message.clone());
            self.room.apply(message, 0);
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result {
        for frame in self.room.take_frames(0) {
            self.socket.send_message(&frame).await?;
        }
        Ok(())
    }

    pub async fn queue(&mut self, op: PendingOp) -> Result {
        self.next_id += 1;
        self.room
            .queue(format!("{}-{}", self.id_prefix, self.next_id), op, 0);
        self.flush().await
    }

    pub async fn say(&mut self, text: &str) -> Result {
        self.queue(PendingOp::Send {
            text: text.into(),
            attachments: Vec::new(),
        })
        .await?;
        self.until(|r| r.outbox().next().is_none()).await
    }

    pub fn answer_to(&self, question: &str) -> Option<MessageView> {
        let prompt = self.room.messages().find(|m| m.text == question)?.seq;
        self.room
            .messages()
            .find(|m| m.answer.as_ref().is_some_and(|a| a.prompt == prompt))
            .cloned()
    }

    /// Waits until the answer to `question` is in `state`, and returns it.
    pub async fn answer_in(&mut self, question: &str, state: AnswerState) -> Result<MessageView> {
        let q = question.to_owned();
        self.until(move |r| {
            let prompt = r.messages().find(|m| m.text == q).map(|m| m.seq);
            r.messages().any(|m| {
                m.answer
                    .as_ref()
                    .is_some_and(|a| Some(a.prompt) == prompt && a.state == state)
            })
        })
        .await?;
        Ok(self.answer_to(question).expect("just seen"))
    }

    pub fn stream_frames(&self, target: Seq) -> usize {
        self.frames
            .iter()
            .filter(|f| matches!(f, ServerMessage::Stream { target: t, .. } if *t == target))
            .count()
    }
}
