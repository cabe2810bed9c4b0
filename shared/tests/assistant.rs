//! The assistant in a room, driven by a scripted fake provider: the real [`Room`] and real
//! [`ClientRoom`]s (frames go through JSON both ways), with the provider's tokens, delays and
//! failures written out in each test.

#![allow(clippy::unwrap_used)] // A test: a panic is the failure report.

use shared::client::{ClientRoom, PendingOp};
use shared::error::{ChatError, ErrorCode};
use shared::protocol::{
    AnswerState, AssistantMode, Author, ClientMessage, MessageView, PrivateAnswer, PrivateKind,
    Role, RoomInfo, Seq, ServerMessage, Vote,
};
use shared::rate_limit::RateLimits;
use shared::room::assistant::{AiConfig, Record, Source, ASSISTANT_ID, STREAM_BATCH_MS};
use shared::room::store::sqlite::Sqlite;
use shared::room::{presence, Conn, ConnLimiter, Effect, Frame, Room, SqlStore};

struct Client {
    conn: Conn,
    limiter: ConnLimiter,
    state: ClientRoom,
    connected: bool,
    /// Frames received, as decoded.
    inbox: Vec<ServerMessage>,
}

struct Harness {
    room: Room<Sqlite>,
    clients: Vec<Client>,
    now: i64,
    next_id: u64,
    /// Generations the room asked for, in order, and those it cancelled.
    generations: Vec<(u64, Seq)>,
    cancelled: Vec<u64>,
    records: Vec<Record>,
    summaries: Vec<Seq>,
    requests: Vec<shared::ai::CompletionRequest>,
    remembered: Vec<String>,
}

fn generous() -> RateLimits {
    RateLimits {
        send_burst: 1e9,
        send_per_second: 1e9,
        frame_burst: 1e9,
        frame_per_second: 1e9,
    }
}

impl Harness {
    /// Ann (member), Bob (member), Mod (moderator), Rita (read-only).
    fn new(mode: AssistantMode) -> Self {
        let info = RoomInfo {
            slug: "ai".into(),
            name: "AI".into(),
            topic: "testing".into(),
            created_at: 0,
            last_activity: None,
            message_count: 0,
            assistant: mode,
            private: false,
        };
        let people = [
            ("ann", Role::Member),
            ("bob", Role::Member),
            ("mod", Role::Moderator),
            ("rita", Role::ReadOnly),
        ];
        let mut h = Harness {
            room: Room::open(SqlStore::open(Sqlite::memory().unwrap()).unwrap(), info).unwrap(),
            clients: people
                .iter()
                .map(|(id, role)| Client {
                    conn: Conn::new(Author {
                        id: (*id).into(),
                        name: id.to_uppercase(),
                        role: *role,
                    }),
                    limiter: ConnLimiter::new(generous(), 0),
                    state: ClientRoom::new(),
                    connected: false,
                    inbox: Vec::new(),
                })
                .collect(),
            now: 1_000,
            next_id: 0,
            generations: Vec::new(),
            cancelled: Vec::new(),
            records: Vec::new(),
            summaries: Vec::new(),
            requests: Vec::new(),
            remembered: Vec::new(),
        };
        for c in 0..h.clients.len() {
            h.connect(c);
        }
        h
    }

    fn connect(&mut self, c: usize) {
        self.clients[c].connected = true;
        self.clients[c].conn.joined = false;
        let hello = self.clients[c].state.connect();
        self.send(c, hello);
    }

    fn disconnect(&mut self, c: usize) {
        self.clients[c].connected = false;
        self.clients[c].conn.joined = false;
        self.clients[c].state.disconnected();
    }

    /// Delivers one frame from client `c` to the room and carries out the effects.
    fn send(&mut self, c: usize, message: ClientMessage) -> Vec<Effect> {
        let raw = serde_json::to_string(&message).unwrap();
        let conns: Vec<Conn> = self.clients.iter().map(|cl| cl.conn.clone()).collect();
        let client = &mut self.clients[c];
        let conn = client.conn.clone();
        let effects = self.room.on_frame(
            &conn,
            &mut client.limiter,
            Frame::Text(&raw),
            self.now,
            || presence(conns.iter()),
        );
        self.carry(Some(c), effects.clone());
        effects
    }

    fn carry(&mut self, from: Option<usize>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Reply(m) => self.deliver(from.unwrap(), &m),
                Effect::Broadcast(m) => {
                    for c in 0..self.clients.len() {
                        if self.clients[c].connected && self.clients[c].conn.joined {
                            self.deliver(c, &m);
                        }
                    }
                }
                Effect::ToUser(user, m) => {
                    for c in 0..self.clients.len() {
                        let client = &self.clients[c];
                        if client.connected && client.conn.joined && client.conn.author.id == user {
                            self.deliver(c, &m);
                        }
                    }
                }
                Effect::BroadcastOthers(_)
                | Effect::NewMember(_)
                | Effect::Notify(_)
                | Effect::NotifyUser(..) => {}
                Effect::Watching => panic!("no watchers in this simulation"),
                Effect::PresencePage { .. } => panic!("no member list in this simulation"),
                Effect::Joined => self.clients[from.unwrap()].conn.joined = true,
                Effect::Generate {
                    gen,
                    target,
                    request,
                } => {
                    self.generations.push((gen, target));
                    self.requests.push(request);
                }
                Effect::Cancel { gen } => self.cancelled.push(gen),
                Effect::Summarize { upto, .. } => self.summaries.push(upto),
                Effect::Record(record) => self.records.push(record),
                Effect::Remember { user_id, .. } => self.remembered.push(user_id),
                Effect::Close(code, _) | Effect::CloseUser(_, code, _) => {
                    panic!("unexpected close {code}")
                }
                Effect::SetRole(..) | Effect::InfoChanged(_) => {
                    panic!("no moderation in this simulation")
                }
                Effect::FilesReleased => panic!("no files in this simulation"),
                Effect::Log(detail) => panic!("storage failure {detail}"),
            }
        }
    }

    fn deliver(&mut self, c: usize, message: &ServerMessage) {
        // Through the wire format, as the app would get it.
        let decoded: ServerMessage =
            serde_json::from_str(&serde_json::to_string(message).unwrap()).unwrap();
        let now = self.now;
        let client = &mut self.clients[c];
        client.inbox.push(decoded.clone());
        client.state.apply(decoded, now);
    }

    fn say(&mut self, c: usize, text: &str) -> Vec<Effect> {
        self.next_id += 1;
        self.send(
            c,
            ClientMessage::Send {
                client_id: format!("m{}", self.next_id),
                text: text.into(),
                attachments: Vec::new(),
            },
        )
    }

    fn command(&mut self, c: usize, op: PendingOp) -> Vec<Effect> {
        self.next_id += 1;
        let id = format!("k{}", self.next_id);
        self.clients[c].state.queue(id, op, self.now);
        let frames = self.clients[c].state.take_frames(self.now);
        let mut effects = Vec::new();
        for frame in frames {
            effects.extend(self.send(c, frame));
        }
        effects
    }

    /// The provider produces `text` for generation `gen`, `ms` after the previous token.
    fn token(&mut self, gen: u64, text: &str, ms: i64) {
        self.now += ms;
        let tick = self.room.ai_tick(gen, self.now).unwrap();
        self.carry(None, tick);
        let effects = self.room.ai_token(gen, text, self.now).unwrap();
        self.carry(None, effects);
    }

    fn finish(&mut self, gen: u64, outcome: Result<Source, ChatError>) {
        self.now += 5;
        let effects = self.room.ai_finish(gen, outcome, self.now).unwrap();
        self.carry(None, effects);
    }

    fn latest_gen(&self) -> u64 {
        self.generations.last().unwrap().0
    }

    fn message(&self, c: usize, seq: Seq) -> MessageView {
        self.clients[c]
            .state
            .messages()
            .find(|m| m.seq == seq)
            .cloned()
            .unwrap_or_else(|| panic!("client {c} has no message {seq}"))
    }

    fn errors(&self, c: usize) -> Vec<ErrorCode> {
        self.clients[c]
            .inbox
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }
}

fn source() -> Source {
    Source {
        provider: "fake".into(),
        model: "scripted-1".into(),
    }
}

fn stream_frames(inbox: &[ServerMessage]) -> Vec<(u32, String)> {
    inbox
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Stream { offset, text, .. } => Some((*offset, text.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_mention_gets_an_answer_streamed_to_everyone_in_order_with_its_numbers() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant what is Rust?");
    let (gen, answer) = h.generations[0];
    assert_eq!(answer, 2, "the answer is the message after the question");
    assert_eq!(
        h.message(1, answer).answer.unwrap().state,
        AnswerState::Streaming
    );

    for token in ["Rust ", "is ", "a ", "language", "."] {
        h.token(gen, token, 12);
    }
    h.finish(gen, Ok(source()));

    for c in 0..4 {
        let m = h.message(c, answer);
        assert_eq!(m.text, "Rust is a language.", "client {c}");
        assert_eq!(m.author.id, ASSISTANT_ID);
        let a = m.answer.unwrap();
        assert_eq!(a.state, AnswerState::Done);
        let meta = a.meta.unwrap();
        assert_eq!(
            (meta.provider.as_str(), meta.model.as_str()),
            ("fake", "scripted-1")
        );
        assert_eq!(meta.first_token_ms, 12);
        assert_eq!(meta.total_ms, 12 * 5 + 5);
        assert!(meta.tokens_in > 0 && meta.tokens_out > 0);
    }
    // Stream frames are contiguous: each starts where the previous ended.
    let frames = stream_frames(&h.clients[1].inbox);
    let mut held = 0;
    for (offset, text) in &frames {
        assert_eq!(*offset as usize, held);
        held += text.len();
    }
    assert!(matches!(
        h.records.last(),
        Some(Record::Answer {
            state: AnswerState::Done,
            ..
        })
    ));
}

#[test]
fn tokens_are_batched_so_frames_go_out_at_most_every_50_ms() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant count");
    let gen = h.latest_gen();
    // 40 tokens, 5 ms apart: 200 ms of tokens.
    for i in 0..40 {
        h.token(gen, &format!("{i} "), 5);
    }
    let frames = stream_frames(&h.clients[0].inbox).len();
    assert!((4..=6).contains(&frames), "{frames} frames for 200 ms");
    // What is buffered goes out by its deadline even without another token.
    let deadline = h.room.ai_deadline(gen).unwrap();
    assert!(deadline <= h.now + STREAM_BATCH_MS);
    h.now = deadline;
    let effects = h.room.ai_tick(gen, h.now).unwrap();
    h.carry(None, effects);
    assert_eq!(h.room.ai_deadline(gen), None);
    let expected: String = (0..40).map(|i| format!("{i} ")).collect();
    assert_eq!(h.message(2, 2).text, expected);
}

#[test]
fn the_answer_is_persisted_as_it_grows_so_a_new_client_gets_the_partial_text_then_the_rest_once() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.disconnect(3);
    h.say(0, "@assistant tell a story");
    let gen = h.latest_gen();
    h.token(gen, "Once ", 60);
    h.token(gen, "upon ", 60);
    // Rita joins mid-answer with nothing cached: the page holds the text so far.
    h.clients[3].state = ClientRoom::new();
    h.connect(3);
    assert_eq!(h.message(3, 2).text, "Once upon ");
    h.token(gen, "a time.", 60);
    h.finish(gen, Ok(source()));
    assert_eq!(h.message(3, 2).text, "Once upon a time.");
}

#[test]
fn a_client_that_reconnects_mid_answer_gets_the_whole_answer_exactly_once() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant go");
    let gen = h.latest_gen();
    h.token(gen, "alpha ", 60);
    h.disconnect(1);
    h.token(gen, "beta ", 60); // Bob misses this one.
    h.connect(1); // Replay from his cursor, then the text so far from offset 0.
    assert_eq!(h.message(1, 2).text, "alpha beta ");
    h.token(gen, "gamma", 60);
    h.finish(gen, Ok(source()));
    assert_eq!(h.message(1, 2).text, "alpha beta gamma");
    assert_eq!(h.message(0, 2).text, "alpha beta gamma");
}

#[test]
fn the_asker_can_stop_an_answer_and_keeps_what_was_written() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant write a lot");
    let gen = h.latest_gen();
    h.token(gen, "One. ", 60);
    h.token(gen, "Two. ", 10); // buffered, not yet sent
    h.command(0, PendingOp::Stop { target: 2 });
    assert_eq!(h.cancelled, vec![gen]);
    // The provider is slow to notice: its late tokens and end change nothing.
    h.token(gen, "Three.", 60);
    h.finish(gen, Ok(source()));
    for c in 0..4 {
        let m = h.message(c, 2);
        assert_eq!(m.text, "One. Two. ");
        assert_eq!(m.answer.unwrap().state, AnswerState::Stopped);
    }
    assert!(
        h.clients[0].state.outbox().next().is_none(),
        "stop was acknowledged"
    );
}

#[test]
fn only_the_asker_or_a_moderator_may_stop_or_regenerate() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant hi");
    h.command(1, PendingOp::Stop { target: 2 });
    assert_eq!(h.errors(1), vec![ErrorCode::Forbidden]);
    assert_eq!(
        h.clients[1].state.last_error().map(|e| e.code),
        Some(ErrorCode::Forbidden)
    );
    assert!(
        h.clients[1].state.outbox().next().is_none(),
        "a refused command is not retried"
    );
    h.command(2, PendingOp::Stop { target: 2 });
    assert_eq!(h.message(0, 2).answer.unwrap().state, AnswerState::Stopped);

    h.command(1, PendingOp::Regenerate { target: 2 });
    assert_eq!(
        h.errors(1),
        vec![ErrorCode::Forbidden, ErrorCode::Forbidden]
    );
    h.command(2, PendingOp::Regenerate { target: 2 });
    assert_eq!(h.generations.len(), 2);
}

#[test]
fn regenerate_writes_a_new_version_and_keeps_the_earlier_one() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant pick a number");
    let first = h.latest_gen();
    h.token(first, "7", 60);
    h.finish(first, Ok(source()));

    h.command(0, PendingOp::Regenerate { target: 2 });
    let started = h.message(1, 2);
    let a = started.answer.unwrap();
    assert_eq!((started.text.as_str(), a.version), ("", 2));
    assert_eq!(
        a.previous,
        vec!["7".to_string()],
        "version 1 stays switchable"
    );
    let second = h.latest_gen();
    assert_ne!(first, second);
    h.token(second, "42", 60);
    h.finish(second, Ok(source()));

    let m = h.message(1, 2);
    let a = m.answer.unwrap();
    assert_eq!((m.text.as_str(), a.version), ("42", 2));
    assert_eq!(a.previous, vec!["7".to_string()]);
}

#[test]
fn regenerating_or_stopping_at_the_wrong_time_is_a_conflict() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant hi");
    h.command(0, PendingOp::Regenerate { target: 2 });
    assert_eq!(h.errors(0), vec![ErrorCode::Conflict]);
    let gen = h.latest_gen();
    h.finish(gen, Ok(source()));
    h.command(0, PendingOp::Stop { target: 2 });
    assert_eq!(h.errors(0), vec![ErrorCode::Conflict, ErrorCode::Conflict]);
    h.command(0, PendingOp::Stop { target: 1 });
    assert_eq!(
        h.errors(0).last(),
        Some(&ErrorCode::InvalidInput),
        "not an answer"
    );
    h.command(0, PendingOp::Stop { target: 99 });
    assert_eq!(h.errors(0).last(), Some(&ErrorCode::NotFound));
}

#[test]
fn one_answer_is_written_at_a_time_and_the_others_wait_in_order() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant first");
    h.say(1, "@assistant second");
    assert_eq!(h.generations.len(), 1, "the second waits");
    // Question 1, answer 2, its start 3, question 4, answer 5.
    assert_eq!(h.message(2, 5).answer.unwrap().state, AnswerState::Queued);
    assert_eq!(h.room.assistant().queued(), vec![5]);
    let gen = h.latest_gen();
    h.token(gen, "one", 60);
    h.finish(gen, Ok(source()));
    assert_eq!(h.generations.len(), 2);
    assert_eq!(h.generations[1].1, 5);
    assert_eq!(
        h.message(2, 5).answer.unwrap().state,
        AnswerState::Streaming
    );
}

#[test]
fn a_queued_answer_can_be_stopped_before_it_starts() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant first");
    h.say(1, "@assistant second");
    h.command(1, PendingOp::Stop { target: 5 });
    assert_eq!(h.message(0, 5).answer.unwrap().state, AnswerState::Stopped);
    let gen = h.latest_gen();
    h.finish(gen, Ok(source()));
    assert_eq!(h.generations.len(), 1, "the stopped one never starts");
}

#[test]
fn too_many_waiting_questions_get_ai_busy_but_the_message_is_kept() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant one");
    h.say(0, "@assistant two");
    let effects = h.say(0, "@assistant three");
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Reply(ServerMessage::Ack { .. }))));
    assert_eq!(h.errors(0), vec![ErrorCode::AiBusy]);
    assert!(h.clients[1]
        .state
        .messages()
        .any(|m| m.text == "@assistant three"));
    assert_eq!(h.room.assistant().queued().len(), 1);
}

#[test]
fn asking_too_often_is_rate_limited_per_user_with_a_retry_time() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.room.set_ai_config(AiConfig {
        burst: 2.0,
        per_second: 0.1,
        max_queued_per_user: 10,
        max_queue: 10,
        ..AiConfig::default()
    });
    h.say(0, "@assistant a");
    h.say(0, "@assistant b");
    h.say(0, "@assistant c");
    let retry = h.clients[0].inbox.iter().find_map(|m| match m {
        ServerMessage::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms,
            ..
        } => *retry_after_ms,
        _ => None,
    });
    assert!(retry.is_some_and(|ms| ms > 0 && ms <= 10_000), "{retry:?}");
    h.say(1, "@assistant bob is not limited by ann");
    assert_eq!(h.errors(1), vec![]);
}

#[test]
fn a_provider_failure_becomes_a_visible_failed_answer_and_the_queue_moves_on() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant first");
    h.say(1, "@assistant second");
    let gen = h.latest_gen();
    h.token(gen, "partial", 60);
    h.finish(
        gen,
        Err(ChatError::new(
            ErrorCode::AiUnavailable,
            "The model server is not running.",
        )),
    );
    let a = h.message(1, 2).answer.unwrap();
    assert_eq!(a.state, AnswerState::Failed);
    assert_eq!(a.error.unwrap().code, ErrorCode::AiUnavailable);
    assert_eq!(
        h.generations.len(),
        2,
        "the next question is not stuck behind it"
    );
    // Retry is regenerate.
    let second = h.latest_gen();
    h.finish(second, Ok(source()));
    h.command(0, PendingOp::Regenerate { target: 2 });
    assert_eq!(h.generations.last().unwrap().1, 2);
}

#[test]
fn ratings_are_one_per_user_changeable_and_the_reason_stays_private() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant hi");
    let gen = h.latest_gen();
    h.command(
        1,
        PendingOp::Rate {
            target: 2,
            vote: Vote::Up,
            reason: None,
        },
    );
    assert_eq!(
        h.errors(1),
        vec![ErrorCode::Conflict],
        "not while it is written"
    );
    h.finish(gen, Ok(source()));
    let rate = |vote| PendingOp::Rate {
        target: 2,
        vote,
        reason: Some("too short".into()),
    };
    h.command(1, rate(Vote::Up));
    h.command(0, rate(Vote::Up));
    h.command(1, rate(Vote::Down));
    assert_eq!(h.message(2, 2).answer.unwrap().tally(), (1, 1));
    h.command(1, rate(Vote::None));
    assert_eq!(h.message(2, 2).answer.unwrap().tally(), (1, 0));
    h.command(3, rate(Vote::Down));
    assert_eq!(
        h.errors(3),
        vec![ErrorCode::Forbidden],
        "read-only cannot rate"
    );
    // The reason reaches the analytics record, never a client.
    assert!(h.records.iter().any(|r| matches!(r,
        Record::Feedback { reason: Some(r), model, .. } if r == "too short" && model == "scripted-1")));
    for client in &h.clients {
        for frame in &client.inbox {
            assert!(!serde_json::to_string(frame).unwrap().contains("too short"));
        }
    }
}

#[test]
fn in_an_all_messages_room_every_message_is_answered_and_in_an_off_room_none() {
    let mut h = Harness::new(AssistantMode::All);
    h.say(0, "hello there");
    assert_eq!(h.generations.len(), 1);
    let mut h = Harness::new(AssistantMode::Off);
    h.say(0, "@assistant are you there?");
    assert!(h.generations.is_empty());
}

#[test]
fn after_a_restart_a_half_written_answer_fails_visibly_and_queued_ones_resume() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant first");
    h.say(1, "@assistant second");
    let gen = h.latest_gen();
    h.token(gen, "half", 60);
    // The object restarts: a new Room over the same storage, nothing kept in memory.
    let info = h.room.info().clone();
    let placeholder = Room::open(
        SqlStore::open(Sqlite::memory().unwrap()).unwrap(),
        info.clone(),
    );
    let old = std::mem::replace(&mut h.room, placeholder.unwrap());
    h.room = Room::open(old.into_store(), info).unwrap();
    let effects = h.room.resume_assistant(h.now).unwrap();
    h.carry(None, effects);
    let first = h.message(0, 2);
    assert_eq!(first.text, "half");
    assert_eq!(first.answer.unwrap().state, AnswerState::Failed);
    assert_eq!(h.generations.last().unwrap().1, 5, "the queued one starts");
}

#[test]
fn the_summary_is_refreshed_once_enough_history_left_the_prompt_window() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.room.set_ai_config(AiConfig {
        context_messages: 10,
        summary_every: 5,
        ..AiConfig::default()
    });
    for i in 0..30 {
        h.say(1, &format!("chatter {i}"));
    }
    h.say(0, "@assistant summarize please");
    let gen = h.latest_gen();
    h.finish(gen, Ok(source()));
    assert_eq!(h.summaries.len(), 1);
    let upto = h.summaries[0];
    h.room
        .ai_summarized(upto, Some("Bob chattered a lot.".into()))
        .unwrap();
    // The next prompt carries it, and only the recent window of messages.
    h.say(0, "@assistant again");
    let request = h.requests.last().unwrap();
    // As quoted data in the turn after the instructions, never in the system's own words.
    assert!(!request.messages[0].content.contains("Bob chattered a lot."));
    assert_eq!(request.messages[1].role, shared::ai::ChatRole::User);
    assert!(request.messages[1].content.contains("Bob chattered a lot."));
    // Instructions, that context turn, and at most the recent window.
    assert!(request.messages.len() <= 12, "{}", request.messages.len());
    assert!(!request
        .messages
        .iter()
        .any(|m| m.content.contains("chatter 3\n")));
}

#[test]
fn the_asker_s_preferences_shape_the_prompt_and_memory_is_learned_only_on_opt_in() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.clients[0].conn.personalization = shared::ai::Personalization {
        language: "Spanish".into(),
        tone: "playful".into(),
        interests: "sailing".into(),
        instructions: "Always end with a question.".into(),
        memory: vec!["Owns a boat".into()],
        remember: true,
    };
    h.say(0, "@assistant plan my weekend");
    let system = h.requests[0].messages[0].content.clone();
    for wanted in [
        "Spanish",
        "playful",
        "sailing",
        "end with a question",
        "Owns a boat",
    ] {
        assert!(system.contains(wanted), "{wanted} missing from {system}");
    }
    let gen = h.latest_gen();
    h.finish(gen, Ok(source()));
    assert_eq!(h.remembered, vec!["ann".to_string()]);

    // Bob did not opt in: nothing is learned about him, and Ann's preferences are not his.
    h.say(1, "@assistant plan mine");
    assert!(!h.requests[1].messages[0].content.contains("Spanish"));
    let gen = h.latest_gen();
    h.finish(gen, Ok(source()));
    assert_eq!(h.remembered.len(), 1);
}

#[test]
fn a_mention_in_a_thread_is_answered_in_the_thread_with_the_thread_as_context() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "root: which flour for bread?");
    h.say(1, "unrelated chatter in the main timeline");
    h.send(
        0,
        ClientMessage::Reply {
            client_id: "r1".into(),
            target: 1,
            text: "@assistant what do you think?".into(),
            also_in_room: false,
            attachments: Vec::new(),
        },
    );
    let (gen, answer) = h.generations[0];
    let prompt: Vec<&str> = h.requests[0]
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert!(
        prompt.iter().any(|c| c.contains("which flour")),
        "{prompt:?}"
    );
    assert!(prompt.iter().any(|c| c.contains("what do you think")));
    assert!(
        !prompt.iter().any(|c| c.contains("unrelated chatter")),
        "{prompt:?}"
    );
    h.token(gen, "Bread flour.", 60);
    h.finish(gen, Ok(source()));
    // The answer is a reply in the thread: not in the main timeline, counted on the root.
    assert!(!h.clients[1].state.messages().any(|m| m.seq == answer));
    let root = h.message(1, 1);
    assert_eq!(root.replies.map(|r| r.count), Some(2));
    let stored = h.room.store().message(answer).unwrap().unwrap();
    assert_eq!(
        (stored.thread, stored.text.as_str()),
        (Some(1), "Bread flour.")
    );
}

/// The prompt of the latest generation, all its messages joined.
fn last_prompt(h: &Harness) -> String {
    h.requests
        .last()
        .unwrap()
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything any client was streamed, joined.
fn everything_streamed(h: &Harness) -> String {
    h.clients
        .iter()
        .flat_map(|c| stream_frames(&c.inbox))
        .map(|(_, text)| text)
        .collect()
}

/// Client `c`'s private answers, as it holds them.
fn privates(h: &Harness, c: usize) -> Vec<PrivateAnswer> {
    h.clients[c].state.private_answers().cloned().collect()
}

#[test]
fn a_question_about_the_room_gets_its_history_numbered_and_an_invented_citation_never_shows() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(
        0,
        "We decided the launch date is March 10, after the venue review.",
    );
    h.say(1, "Lunch is pizza on Friday.");
    h.say(2, "@assistant what did we decide about the launch date?");
    let (gen, answer) = h.generations[0];
    let prompt = last_prompt(&h);
    assert!(
        prompt.contains("[1] <<message from=\"ANN, 1970-01-01\">>"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("[2] <<message"),
        "only the match is numbered: {prompt}"
    );

    for token in [
        "March 10 [",
        "1]; the venue",
        " is Harbor Hall [",
        "7].",
        " See [1, 9].",
    ] {
        h.token(gen, token, 20);
    }
    h.finish(gen, Ok(source()));

    let streamed = everything_streamed(&h);
    assert!(
        !streamed.contains('7') && !streamed.contains('9'),
        "{streamed}"
    );
    for c in 0..4 {
        let m = h.message(c, answer);
        assert_eq!(
            m.text, "March 10 [1]; the venue is Harbor Hall . See [1].",
            "client {c}"
        );
        let meta = m.answer.unwrap().meta.unwrap();
        assert_eq!(meta.retrieved, vec![1]);
        assert_eq!(meta.citations.len(), 1);
        assert_eq!((meta.citations[0].n, meta.citations[0].seq), (1, 1));
        assert_eq!(meta.citations[0].author, "ANN");
        assert_eq!(meta.dropped_citations, 2);
    }
}

#[test]
fn a_question_about_the_room_that_nothing_matches_is_answered_so_without_asking_the_provider() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "Lunch is pizza on Friday.");
    h.say(1, "@assistant what did we decide about the launch date?");
    assert!(h.generations.is_empty(), "the provider was not asked");
    let answer = h.message(2, 3);
    assert_eq!(
        answer.text,
        "I found nothing in this room about decide launch date."
    );
    let a = answer.answer.unwrap();
    assert_eq!(a.state, AnswerState::Done);
    assert!(a.meta.unwrap().citations.is_empty());
}

#[test]
fn a_deleted_message_is_never_retrieved_or_cited() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "The launch date is March 10.");
    h.command(0, PendingOp::Delete { target: 1 });
    h.say(1, "@assistant when is the launch date we planned?");
    assert!(h.generations.is_empty(), "nothing left to ground an answer");
    let answer = h.clients[1]
        .state
        .messages()
        .find(|m| m.author.id == ASSISTANT_ID)
        .cloned()
        .unwrap();
    assert!(
        answer
            .text
            .starts_with("I found nothing in this room about"),
        "{}",
        answer.text
    );
    assert!(!h
        .requests
        .iter()
        .any(|r| r.messages.iter().any(|m| m.content.contains("March 10"))));
}

#[test]
fn an_answer_citing_nothing_cites_the_source_it_repeats_or_says_it_could_not_answer_and_points_at_them(
) {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(
        0,
        "We decided the launch date is March 10, after the venue review.",
    );
    h.say(1, "@assistant what did we decide about the launch date?");
    let (gen, answer) = h.generations[0];
    h.token(gen, "The launch date was decided: March 10.", 20);
    h.finish(gen, Ok(source()));
    let m = h.message(0, answer);
    assert_eq!(m.text, "The launch date was decided: March 10. [1]");
    assert_eq!(m.answer.unwrap().meta.unwrap().citations[0].seq, 1);

    h.say(1, "@assistant what did we decide about the launch venue?");
    let (gen, answer) = *h.generations.last().unwrap();
    h.token(gen, "It is probably the town library.", 20);
    h.finish(gen, Ok(source()));
    // The room held messages about it, but the answer used none of them: it says so and
    // points at them rather than guessing.
    let m = h.message(0, answer);
    assert_eq!(
        m.text,
        "I could not answer that from this room's messages. The closest I found: [1], [2]."
    );
    let meta = m.answer.unwrap().meta.unwrap();
    assert_eq!(meta.citations.len(), 2);
    assert_eq!(meta.citations[0].seq, 1);
}

#[test]
fn a_general_question_is_answered_by_the_provider_even_when_the_room_holds_nothing_about_it() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "@assistant what is the capital of France?");
    let (gen, answer) = h.generations[0];
    assert!(!last_prompt(&h).contains("Numbered messages"));
    h.token(gen, "Paris.", 20);
    h.finish(gen, Ok(source()));
    let m = h.message(1, answer);
    assert_eq!(m.text, "Paris.");
    assert!(m.answer.unwrap().meta.unwrap().retrieved.is_empty());
}

#[test]
fn catch_me_up_is_seen_only_by_the_asker_and_covers_exactly_their_unread_range() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(1, "Old news everyone has read.");
    h.send(0, ClientMessage::Read { seq: 1 });
    // Ann comes back later: what she had read is in her welcome, and her page may mark the
    // rest read as it shows it; the catch-up covers what was unread when she came.
    h.disconnect(0);
    h.connect(0);
    h.say(1, "We decided to ship v2 on March 10.");
    h.say(2, "@ANN can you review the billing PR?");
    h.say(1, "Docs are at https://example.com/docs");
    let head_before = h.room.head();
    h.send(0, ClientMessage::Read { seq: head_before });
    h.send(0, h.clients[0].state.catch_up(None).unwrap());

    let (gen, target) = h.generations[0];
    assert_eq!(target, 0, "a private answer is no message");
    let prompt = last_prompt(&h);
    assert!(prompt.contains("ship v2") && prompt.contains("billing PR") && prompt.contains("docs"));
    assert!(
        !prompt.contains("Old news"),
        "read messages are not in it: {prompt}"
    );
    h.token(gen, "- v2 ships March 10 [1]\n", 20);
    h.token(gen, "- MOD asks you to review billing [2] [5]", 60);
    h.finish(gen, Ok(source()));

    let mine = privates(&h, 0);
    assert_eq!(mine.len(), 1);
    let a = &mine[0];
    assert_eq!((a.kind, a.state), (PrivateKind::CatchUp, AnswerState::Done));
    assert_eq!(
        (a.after, a.upto),
        (1, head_before),
        "exactly the unread range"
    );
    assert_eq!((a.considered, a.total), (3, 3));
    assert_eq!(
        a.text,
        "- v2 ships March 10 [1]\n- MOD asks you to review billing [2] "
    );
    let meta = a.meta.as_ref().unwrap();
    assert_eq!(meta.retrieved, vec![2, 3, 4]);
    assert_eq!(
        meta.citations.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(meta.dropped_citations, 1);
    for c in 1..4 {
        assert!(privates(&h, c).is_empty(), "client {c} saw it");
        assert!(
            !h.clients[c]
                .inbox
                .iter()
                .any(|m| matches!(m, ServerMessage::Private { .. })),
            "client {c} was sent it"
        );
    }
    assert_eq!(
        h.room.head(),
        head_before,
        "nothing was added to the room's log"
    );
}

#[test]
fn catch_me_up_typed_as_a_message_is_answered_privately_and_a_reload_gets_it_again() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(1, "The offsite is in Lisbon.");
    h.say(0, "@assistant catch me up");
    let (gen, _) = h.generations[0];
    assert!(last_prompt(&h).contains("Lisbon"));
    h.token(gen, "- The offsite is in Lisbon [1]", 20);
    // The asker reloads mid-answer: the hello brings the text so far.
    h.disconnect(0);
    h.clients[0].state = ClientRoom::new();
    h.connect(0);
    assert_eq!(privates(&h, 0)[0].state, AnswerState::Streaming);
    assert_eq!(privates(&h, 0)[0].text, "- The offsite is in Lisbon [1]");
    h.finish(gen, Ok(source()));
    assert_eq!(privates(&h, 0)[0].state, AnswerState::Done);
    assert!(privates(&h, 1).is_empty());
    // Everyone sees the request (it was posted) but no answer message.
    assert!(!h.clients[1]
        .state
        .messages()
        .any(|m| m.author.id == ASSISTANT_ID));
}

#[test]
fn catch_me_up_with_nothing_unread_says_so_and_summarize_thread_covers_the_thread() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(1, "Seen already.");
    h.send(0, ClientMessage::Read { seq: 1 });
    h.send(
        0,
        ClientMessage::CatchUp {
            thread: None,
            after: None,
        },
    );
    assert!(h.generations.is_empty());
    assert!(privates(&h, 0)[0].text.starts_with("You are all caught up"));

    h.send(
        1,
        ClientMessage::Reply {
            client_id: "r1".into(),
            target: 1,
            text: "A reply in the thread about flour.".into(),
            also_in_room: false,
            attachments: Vec::new(),
        },
    );
    h.send(
        0,
        ClientMessage::CatchUp {
            thread: Some(2),
            after: None,
        },
    );
    let (gen, _) = h.generations[0];
    let prompt = last_prompt(&h);
    assert!(
        prompt.contains("Seen already") && prompt.contains("about flour"),
        "{prompt}"
    );
    h.finish(gen, Ok(source()));
    let summary = privates(&h, 0)
        .into_iter()
        .find(|a| a.kind == PrivateKind::Thread)
        .unwrap();
    assert_eq!(summary.thread, Some(1));
}

#[test]
fn a_private_answer_the_room_restarted_during_fails_visibly_on_the_next_hello() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(1, "News.");
    h.send(
        0,
        ClientMessage::CatchUp {
            thread: None,
            after: None,
        },
    );
    let info = h.room.info().clone();
    let placeholder = Room::open(
        SqlStore::open(Sqlite::memory().unwrap()).unwrap(),
        info.clone(),
    );
    let old = std::mem::replace(&mut h.room, placeholder.unwrap());
    h.room = Room::open(old.into_store(), info).unwrap();
    let effects = h.room.resume_assistant(h.now).unwrap();
    h.carry(None, effects);
    h.disconnect(0);
    h.clients[0].state = ClientRoom::new();
    h.connect(0);
    let a = &privates(&h, 0)[0];
    assert_eq!(a.state, AnswerState::Failed);
    assert_eq!(a.error.as_ref().unwrap().code, ErrorCode::Internal);
}

#[test]
fn production_s_nearest_messages_in_meaning_join_the_sources_but_never_a_deleted_one() {
    let mut h = Harness::new(AssistantMode::Mention);
    h.say(0, "We decided the launch date is March 10.");
    // Says the same in other words: full text alone does not find it.
    h.say(1, "Shipping day moved to the 17th, per the venue.");
    h.say(1, "Secret plan B that was deleted.");
    h.command(1, PendingOp::Delete { target: 3 });
    h.say(2, "@assistant what did we decide about the launch date?");
    let gen = h.latest_gen();
    assert!(
        !last_prompt(&h).contains("[2] <<message"),
        "one numbered source"
    );
    assert_eq!(
        h.room.ai_retrieval(gen),
        Some("@assistant what did we decide about the launch date?")
    );

    // Vectorize's answer, nearest first: the paraphrase, the deleted message, a later one.
    let request = h
        .room
        .ai_reground(gen, &[2, 3, 99])
        .unwrap()
        .expect("new sources");
    let prompt: String = request
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert!(
        prompt.contains("[2] <<message from=\"BOB, 1970-01-01\">>\nShipping day"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("[3] <<message"),
        "the deleted one is not a source: {prompt}"
    );
    h.token(gen, "It moved to the 17th [2].", 20);
    h.finish(gen, Ok(source()));
    let meta = h.clients[0]
        .state
        .messages()
        .find(|m| m.author.id == ASSISTANT_ID)
        .and_then(|m| m.answer.clone())
        .and_then(|a| a.meta)
        .unwrap();
    assert_eq!(meta.retrieved, vec![1, 2]);
    assert_eq!(meta.citations[0].seq, 2);
    // Once text has streamed, the sources stay what the answer was written from.
    assert_eq!(h.room.ai_reground(gen, &[1]).unwrap(), None);
}
