//! The room's log: the only code that assigns sequence numbers, de-duplicates and
//! acknowledges. Messages, moderation, the assistant and seeding all append through it.

use super::*;
use crate::protocol::{Event, MessageView};

impl<D: Sql> Room<D> {
    /// Appends `count` messages made by `make(n)` straight to the store, as sends would store
    /// them (for a benchmark's bulk seed: no sockets, rate limits or de-duplication lookups).
    /// Returns the new head.
    pub fn seed(
        &mut self,
        count: u64,
        make: impl Fn(u64) -> (Author, Millis, String),
    ) -> Result<Seq, Failure> {
        for _ in 0..count {
            let (author, at, text) = make(self.head + 1);
            self.append_with(
                author,
                |seq| format!("seed-{seq}"),
                at,
                EventKind::Message {
                    text,
                    attachments: Vec::new(),
                },
            )?;
        }
        Ok(self.head)
    }

    /// Stores a new event at the head of the log: the one place a sequence number is assigned.
    /// `client_id` is the sender's (de-duplicated by [`Room::duplicate`] before this is called);
    /// the room's own events (the assistant's) get one no client can send, unique by
    /// construction.
    pub(super) fn append_event(
        &mut self,
        author: Author,
        client_id: Option<String>,
        now: Millis,
        kind: EventKind,
    ) -> Result<Event, Failure> {
        match client_id {
            Some(id) => self.append_with(author, |_| id, now, kind),
            None => self.append_with(author, |seq| format!("ai-{seq}"), now, kind),
        }
    }

    fn append_with(
        &mut self,
        author: Author,
        client_id: impl FnOnce(Seq) -> String,
        at: Millis,
        kind: EventKind,
    ) -> Result<Event, Failure> {
        let seq = self.head + 1;
        let event = Event {
            seq,
            at,
            author,
            client_id: client_id(seq),
            kind,
        };
        self.store.append(&event)?;
        self.head = seq;
        Ok(event)
    }

    /// A resend of an already stored mutation (same author and client id) gets its ack again,
    /// with `duplicate: true`, and nothing is stored or broadcast.
    pub(super) fn duplicate(
        &self,
        author_id: &str,
        client_id: &str,
    ) -> Result<Option<Vec<Effect>>, Failure> {
        Ok(self.store.find_mutation(author_id, client_id)?.map(|seq| {
            vec![Effect::Reply(ServerMessage::Ack {
                client_id: client_id.to_owned(),
                seq,
                duplicate: true,
            })]
        }))
    }

    /// A stored mutation's ack to its sender and the event to everyone.
    pub(super) fn acknowledged(client_id: String, event: Event) -> Vec<Effect> {
        vec![
            Effect::Reply(ServerMessage::Ack {
                client_id,
                seq: event.seq,
                duplicate: false,
            }),
            Effect::Broadcast(ServerMessage::Event { event }),
        ]
    }

    /// Records who a newly posted or edited text mentions, and returns them.
    pub(super) fn record_mentions(&mut self, event: &Event) -> Result<Vec<String>, Failure> {
        let (seq, text) = match &event.kind {
            EventKind::Message { text, .. } | EventKind::Reply { text, .. } => (event.seq, text),
            EventKind::Edit { target, text } => (*target, text),
            _ => return Ok(Vec::new()),
        };
        // Most messages mention nobody: skip the member lookup for them.
        if !text.contains('@') {
            return Ok(Vec::new());
        }
        let members = self
            .store
            .members_named(&crate::mentions::candidate_keys(text))?;
        let mentioned: Vec<&str> = crate::mentions::find_mentions(text, &members)
            .into_iter()
            .filter(|id| *id != event.author.id)
            .collect();
        if !mentioned.is_empty() {
            self.store.add_mentions(seq, &mentioned)?;
        }
        Ok(mentioned.into_iter().map(str::to_owned).collect())
    }

    /// What watchers hear of `event`: a message that counts toward unread counts arrived, an
    /// edit mentioned someone new (`mentioned`), or a message that counted (`target`, as it
    /// was) was deleted.
    pub(crate) fn activity(
        &self,
        event: &Event,
        mentioned: Vec<String>,
        target: Option<&MessageView>,
    ) -> Result<Option<Effect>, Failure> {
        let activity = match (&event.kind, target) {
            (EventKind::Message { .. }, _) => ServerMessage::Activity {
                seq: event.seq,
                by: event.author.id.clone(),
                main: true,
                mentions: mentioned,
                removed: false,
            },
            (EventKind::Reply { also_in_room, .. }, _) => ServerMessage::Activity {
                seq: event.seq,
                by: event.author.id.clone(),
                main: *also_in_room,
                mentions: mentioned,
                removed: false,
            },
            (EventKind::Answer { thread, .. }, _) => ServerMessage::Activity {
                seq: event.seq,
                by: event.author.id.clone(),
                main: thread.is_none(),
                mentions: Vec::new(),
                removed: false,
            },
            // Only the mentions count: the message itself was counted when it was posted.
            (EventKind::Edit { target, .. }, Some(message)) if !mentioned.is_empty() => {
                ServerMessage::Activity {
                    seq: *target,
                    by: message.author.id.clone(),
                    main: false,
                    mentions: mentioned,
                    removed: false,
                }
            }
            (EventKind::Delete { target }, Some(message)) => ServerMessage::Activity {
                seq: *target,
                by: message.author.id.clone(),
                main: message.thread.is_none() || message.also_in_room,
                mentions: self.store.mentioned(*target)?,
                removed: true,
            },
            _ => return Ok(None),
        };
        Ok(Some(Effect::Notify(activity)))
    }

    pub(super) fn mutate(
        &mut self,
        conn: &Conn,
        client_id: String,
        now: Millis,
        action: Action,
        kind: EventKind,
    ) -> Result<Vec<Effect>, Failure> {
        let author = &conn.author;
        if let Some(effects) = self.duplicate(&author.id, &client_id)? {
            return Ok(effects);
        }
        if !conn.may(action) {
            return Err(forbidden());
        }
        if matches!(action, Action::Post | Action::EditOwn) {
            if let Some(left) = self
                .store
                .member(&author.id)?
                .and_then(|m| m.mute_left(now))
            {
                return Err(Failure::Refused(ChatError::muted(left)));
            }
        }
        let mut moderated = None;
        let mut target_message = None;
        let target = kind.changes();
        if let Some(target) = &target {
            let message = self
                .store
                .message(*target)?
                .filter(|m| !m.deleted)
                .ok_or_else(|| {
                    Failure::Refused(ChatError::new(
                        ErrorCode::NotFound,
                        format!("Message {target} does not exist or was deleted."),
                    ))
                })?;
            let own = message.author.id == author.id;
            let only_own = || {
                refused(
                    ErrorCode::Forbidden,
                    "You can only change your own messages.",
                )
            };
            match &kind {
                EventKind::Edit { .. } if !own => return Err(only_own()),
                EventKind::Delete { .. } if !own => {
                    if !conn.may(Action::DeleteAny) {
                        return Err(only_own());
                    }
                    // Deleting someone's message is moderating them: like every other
                    // moderation action, it needs a higher role than theirs (now, not when
                    // they posted). Authors with no standing (the assistant) count as members.
                    let theirs = self
                        .store
                        .member(&message.author.id)?
                        .map_or(Role::Member, |m| m.role);
                    if !crate::permissions::outranks(conn.author.role, conn.admin, theirs) {
                        return Err(refused(
                            ErrorCode::Forbidden,
                            "You can only delete messages of members below your own role.",
                        ));
                    }
                    moderated = Some(message.author.id.clone());
                }
                EventKind::React {
                    emoji, add: true, ..
                } if message.reactions.len() >= limits::REACTIONS_PER_MESSAGE
                    && !message.reactions.iter().any(|r| &r.emoji == emoji) =>
                {
                    return Err(refused(
                        ErrorCode::TooLarge,
                        format!(
                            "A message can carry {} different reactions; add one of those.",
                            limits::REACTIONS_PER_MESSAGE
                        ),
                    ));
                }
                _ => {}
            }
            target_message = Some(message);
        }
        let event = self.append_event(author.clone(), Some(client_id.clone()), now, kind)?;
        let already = match &event.kind {
            EventKind::Edit { target, .. } => self.store.mentioned(*target)?,
            _ => Vec::new(),
        };
        let mut mentioned = self.record_mentions(&event)?;
        // An edit counts only for whom it newly mentions.
        mentioned.retain(|id| !already.contains(id));
        let notify = self.activity(&event, mentioned, target_message.as_ref())?;
        if let (Some(target_id), EventKind::Delete { target }) = (moderated, &event.kind) {
            self.audit(
                conn,
                "delete_message",
                Some(target_id),
                format!("#{target}"),
                now,
            )?;
        }
        let released = matches!(event.kind, EventKind::Delete { .. })
            && target_message
                .as_ref()
                .is_some_and(|m| !m.attachments.is_empty());
        let mut effects = Self::acknowledged(client_id, event);
        effects.extend(notify);
        if released {
            effects.push(Effect::FilesReleased);
        }
        Ok(effects)
    }
}
