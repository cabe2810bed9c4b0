//! Managing an answer: stop, regenerate and rate, by its asker or a moderator. Each is a
//! mutation like a message: de-duplicated, sequenced and acknowledged by the room's log.

use super::*;

impl<D: Sql> Room<D> {
    /// The answer message `target`, or `not_found`.
    fn answer(&self, target: Seq) -> Result<(MessageView, crate::protocol::AnswerView), Failure> {
        let message = self.store.message(target)?.filter(|m| !m.deleted);
        match message {
            Some(mut m) => match m.answer.take() {
                Some(answer) => Ok((m, answer)),
                None => Err(refused(
                    ErrorCode::InvalidInput,
                    format!("Message {target} is not an assistant answer."),
                )),
            },
            None => Err(refused(
                ErrorCode::NotFound,
                format!("Message {target} does not exist or was deleted."),
            )),
        }
    }

    /// The answer `target`, if `conn` may manage it: its asker, or a moderator.
    fn managed_answer(
        &self,
        conn: &Conn,
        target: Seq,
        verb: &str,
    ) -> Result<(MessageView, crate::protocol::AnswerView), Failure> {
        let (message, answer) = self.answer(target)?;
        if answer.asker != conn.author.id && !conn.may(Action::ManageAnswers) {
            return Err(refused(
                ErrorCode::Forbidden,
                format!("Only who asked, or a moderator, can {verb} this answer."),
            ));
        }
        Ok((message, answer))
    }

    /// Stop: the asker or a moderator ends an answer being written (keeping its text) or
    /// takes a queued one off the queue.
    pub(crate) fn stop_answer(
        &mut self,
        conn: &Conn,
        client_id: String,
        target: Seq,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        if let Some(effects) = self.duplicate(&conn.author.id, &client_id)? {
            return Ok(effects);
        }
        let (message, answer) = self.managed_answer(conn, target, "stop")?;
        if !self.assistant.is_active(target) {
            return Err(refused(
                ErrorCode::Conflict,
                "This answer has already finished.",
            ));
        }
        let mut effects = Vec::new();
        let running = self
            .assistant
            .running
            .as_ref()
            .filter(|r| r.job.target == target)
            .map(|r| r.gen);
        let (version, text, meta) = match running {
            Some(gen) => {
                effects.extend(self.flush(now)?);
                effects.push(Effect::Cancel { gen });
                let running = self
                    .assistant
                    .running
                    .take()
                    .expect("checked running above");
                let meta = AnswerMeta {
                    tokens_out: ai::estimate_tokens(&running.flushed) as u32,
                    first_token_ms: running
                        .first_token_at
                        .map_or(0, |t| (t - running.started_at).max(0) as u32),
                    total_ms: (now - running.started_at).max(0) as u32,
                    ..AnswerMeta::default()
                };
                (running.job.version, running.flushed, Some(meta))
            }
            None => {
                self.assistant.queue.retain(|j| j.target != target);
                (answer.version, message.text, answer.meta)
            }
        };
        let event = self.append_event(
            conn.author.clone(),
            Some(client_id.clone()),
            now,
            EventKind::AnswerStatus {
                target,
                version,
                status: AnswerState::Stopped,
                text,
                error: None,
                meta,
            },
        )?;
        effects.extend(Self::acknowledged(client_id, event));
        effects.extend(self.start_next(now)?);
        Ok(effects)
    }

    /// Regenerate: queue a new version of a finished answer; the current text stays as an
    /// earlier version once the new one starts.
    pub(crate) fn regenerate_answer(
        &mut self,
        conn: &Conn,
        client_id: String,
        target: Seq,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        if let Some(effects) = self.duplicate(&conn.author.id, &client_id)? {
            return Ok(effects);
        }
        let (message, answer) = self.managed_answer(conn, target, "regenerate")?;
        if self.assistant.is_active(target) || answer.state.is_active() {
            return Err(refused(
                ErrorCode::Conflict,
                "This answer is still being written; stop it first.",
            ));
        }
        self.assistant
            .admit(&conn.author.id, now)
            .map_err(Failure::Refused)?;
        let event = self.append_event(
            conn.author.clone(),
            Some(client_id.clone()),
            now,
            EventKind::AnswerStatus {
                target,
                version: answer.version,
                status: AnswerState::Queued,
                text: message.text,
                error: None,
                meta: None,
            },
        )?;
        let personalization = if conn.author.id == answer.asker {
            conn.personalization.clone()
        } else {
            Personalization::default()
        };
        self.assistant.queue.push_back(Job {
            target,
            prompt: answer.prompt,
            thread: message.thread,
            asker: answer.asker,
            version: answer.version + 1,
            personalization,
            private: None,
        });
        let mut effects = Self::acknowledged(client_id, event);
        effects.extend(self.start_next(now)?);
        Ok(effects)
    }

    /// Rate a finished answer; one vote per user, replacing their earlier one.
    pub(crate) fn rate_answer(
        &mut self,
        conn: &Conn,
        client_id: String,
        target: Seq,
        vote: Vote,
        reason: Option<String>,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        if let Some(effects) = self.duplicate(&conn.author.id, &client_id)? {
            return Ok(effects);
        }
        if !conn.may(Action::Rate) {
            return Err(refused(
                ErrorCode::Forbidden,
                "Your role in this room does not allow rating answers.",
            ));
        }
        let (_, answer) = self.answer(target)?;
        if answer.state.is_active() {
            return Err(refused(
                ErrorCode::Conflict,
                "Rate this answer once it has finished.",
            ));
        }
        let event = self.append_event(
            conn.author.clone(),
            Some(client_id.clone()),
            now,
            EventKind::Feedback { target, vote },
        )?;
        let mut effects = Self::acknowledged(client_id, event);
        effects.push(Effect::Record(Record::Feedback {
            target,
            user_id: conn.author.id.clone(),
            vote,
            reason: reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
            model: answer.meta.map(|m| m.model).unwrap_or_default(),
        }));
        Ok(effects)
    }
}
