//! A small typed client of the HTTP API and the room socket, built on `shared`'s protocol types.
//!
//! Every wait is bounded ([`DEFAULT_TIMEOUT`] unless a test says otherwise), so a broken server
//! fails a test with a message instead of hanging it.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use shared::protocol::http::{CreateRoom, CreateSession, ErrorBody, RoomList, SessionInfo};
use shared::protocol::{
    Author, ClientMessage, Event, HistoryReason, Member, MessageView, RoomInfo, Seq, ServerMessage,
    PROTOCOL_VERSION,
};
use shared::ErrorCode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::server::DevServer;
use crate::Result;

/// How long a helper waits for an expected frame or response.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The session cookie's name.
pub const COOKIE_NAME: &str = "dc_session";

/// The header that carries the client's address to the Worker.
pub const CLIENT_IP_HEADER: &str = "CF-Connecting-IP";

/// A plain HTTP client with a bounded request time. It keeps no idle connections: sessions
/// are shared between tests (statics), each test has its own tokio runtime, and a pooled
/// connection belongs to the runtime that opened it — reused after that test ended, it fails
/// with "dispatch task is gone". Loopback connections are cheap to open again.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEFAULT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}

/// Reads an error response: its status and its [`ErrorBody`].
pub async fn error_body(response: reqwest::Response) -> Result<(u16, ErrorBody)> {
    let status = response.status().as_u16();
    let text = response.text().await.context("reading the error body")?;
    let body: ErrorBody = serde_json::from_str(&text)
        .with_context(|| format!("status {status}: body is not an ErrorBody: {text}"))?;
    Ok((status, body))
}

/// A response header as text (empty when absent or not text), for assertions.
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Asserts that a response is the given error: the code in the body and the status that
/// [`ErrorCode::http_status`] assigns to it.
pub async fn expect_error(response: reqwest::Response, code: ErrorCode) -> Result<ErrorBody> {
    let (status, body) = error_body(response).await?;
    if body.code != code || status != code.http_status() {
        bail!(
            "expected {code} ({}), got {} ({status}): {}",
            code.http_status(),
            body.code,
            body.message
        );
    }
    Ok(body)
}

/// One signed-in guest: a display name and the session cookie the server signed for it.
#[derive(Clone)]
pub struct Session {
    http: reqwest::Client,
    base: String,
    ws_base: String,
    origin: String,
    cookie: String,
    /// Who the server says this session is.
    pub info: SessionInfo,
}

impl Session {
    /// `POST /api/session {name}` and keeps the cookie.
    pub async fn create(server: &DevServer, name: &str) -> Result<Session> {
        let http = http();
        let response = http
            .post(format!("{}/api/session", server.url()))
            .json(&CreateSession { name: name.into() })
            .send()
            .await
            .context("POST /api/session")?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.text().await.unwrap_or_default();
            bail!("POST /api/session answered {status}: {text}");
        }
        let cookie = session_cookie(response.headers())
            .ok_or_else(|| anyhow!("POST /api/session set no {COOKIE_NAME} cookie"))?;
        let info: SessionInfo = response.json().await.context("SessionInfo body")?;
        Ok(Session {
            http,
            base: server.url(),
            ws_base: format!("ws://127.0.0.1:{}", server.port()),
            origin: server.origin(),
            cookie,
            info,
        })
    }

    /// A session from a `Cookie` header a browser holds (a signed-in account's, for example);
    /// `GET /api/session` must accept it.
    pub async fn from_cookie(server: &DevServer, cookie: &str) -> Result<Session> {
        let http = http();
        let response = http
            .get(format!("{}/api/session", server.url()))
            .header("Cookie", cookie)
            .send()
            .await
            .context("GET /api/session")?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.text().await.unwrap_or_default();
            bail!("GET /api/session answered {status}: {text}");
        }
        let info: SessionInfo = response.json().await.context("SessionInfo body")?;
        Ok(Session {
            http,
            base: server.url(),
            ws_base: format!("ws://127.0.0.1:{}", server.port()),
            origin: server.origin(),
            cookie: cookie.to_owned(),
            info,
        })
    }

    /// The user id the server assigned.
    pub fn user_id(&self) -> &str {
        &self.info.user_id
    }

    /// The `Cookie` header value (`dc_session=...`).
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The server's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A room's WebSocket URL.
    pub fn ws_url(&self, slug: &str) -> String {
        format!("{}/api/rooms/{slug}/ws", self.ws_base)
    }

    /// `GET <path>` with the cookie.
    pub async fn get(&self, path: &str) -> Result<reqwest::Response> {
        self.http
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .with_context(|| format!("GET {path}"))
    }

    /// `POST <path>` with a JSON body and the cookie.
    pub async fn post<T: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))
    }

    /// A request builder with the cookie, for requests the helpers do not cover.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
    }

    /// `POST /api/rooms`, expecting 201.
    /// Joins a room once, so the room has a member record for this user, then leaves.
    pub async fn visit(&self, slug: &str) -> Result {
        let (socket, _) = self.join(slug, None).await?;
        socket.close().await;
        Ok(())
    }

    /// A moderation command over HTTP (`POST /api/rooms/<slug>/moderation`).
    pub async fn moderate(
        &self,
        slug: &str,
        command: &shared::moderation::Command,
    ) -> Result<reqwest::Response> {
        self.post(&format!("/api/rooms/{slug}/moderation"), command)
            .await
    }

    pub async fn create_room(&self, name: &str, topic: &str) -> Result<RoomInfo> {
        let response = self
            .post(
                "/api/rooms",
                &CreateRoom {
                    name: name.into(),
                    topic: topic.into(),
                    assistant: Default::default(),
                    private: false,
                },
            )
            .await?;
        let status = response.status().as_u16();
        if status != 201 {
            let text = response.text().await.unwrap_or_default();
            bail!("POST /api/rooms answered {status}: {text}");
        }
        response.json().await.context("RoomInfo body")
    }

    /// Creates a room with a unique name.
    pub async fn new_room(&self) -> Result<RoomInfo> {
        self.create_room(&crate::unique("room"), "").await
    }

    /// `GET /api/rooms`.
    pub async fn rooms(&self) -> Result<RoomList> {
        let response = self.get("/api/rooms").await?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response.text().await.unwrap_or_default();
            bail!("GET /api/rooms answered {status}: {text}");
        }
        response.json().await.context("RoomList body")
    }

    /// Opens a room's socket as this site's page would (own Origin, the cookie).
    pub async fn connect(&self, slug: &str) -> Result<RoomSocket> {
        RoomSocket::open(&self.ws_url(slug), Some(&self.origin), Some(&self.cookie))
            .await?
            .map_err(|refusal| anyhow!("upgrade to {slug} refused: {refusal:?}"))
    }

    /// Opens a room's socket as if from the client address `client_ip` (see
    /// [`RoomSocket::open_from`]): the socket, or the server's refusal of the upgrade.
    pub async fn connect_from(
        &self,
        slug: &str,
        client_ip: Option<&str>,
    ) -> Result<Result<RoomSocket, Refusal>> {
        RoomSocket::open_from(
            &self.ws_url(slug),
            Some(&self.origin),
            Some(&self.cookie),
            client_ip,
        )
        .await
    }

    /// Opens a room's socket as this session would and returns the server's refusal of the
    /// upgrade, or `None` if it was accepted (the socket is then closed).
    pub async fn upgrade_refusal(&self, slug: &str) -> Result<Option<Refusal>> {
        Ok(
            match RoomSocket::open(&self.ws_url(slug), Some(&self.origin), Some(&self.cookie))
                .await?
            {
                Ok(socket) => {
                    socket.close().await;
                    None
                }
                Err(refusal) => Some(refusal),
            },
        )
    }

    /// Opens a room's socket and completes the hello.
    pub async fn join(&self, slug: &str, after: Option<Seq>) -> Result<(RoomSocket, Joined)> {
        let mut socket = self.connect(slug).await?;
        let joined = socket.hello(after).await?;
        Ok((socket, joined))
    }

    /// Opens a room's socket asking for batched frames ([`shared::protocol::BATCH_QUERY`]), as
    /// the app does; the socket reads a batch as its messages, in order.
    pub async fn connect_batched(&self, slug: &str) -> Result<RoomSocket> {
        let url = format!("{}?{}", self.ws_url(slug), shared::protocol::BATCH_QUERY);
        RoomSocket::open(&url, Some(&self.origin), Some(&self.cookie))
            .await?
            .map_err(|refusal| anyhow!("upgrade to {slug} refused: {refusal:?}"))
    }

    /// Joins as the app does: batched frames, and the hello in the socket URL
    /// ([`shared::protocol::FIRST_FRAME_PARAM`]), so the welcome comes with the upgrade.
    pub async fn join_at_once(
        &self,
        slug: &str,
        after: Option<Seq>,
    ) -> Result<(RoomSocket, Joined)> {
        let mut socket = self
            .connect_with_first_frame(slug, &Self::hello_frame(after))
            .await?;
        let joined = socket.joined().await?;
        Ok((socket, joined))
    }

    /// The hello a client at `after` sends.
    pub fn hello_frame(after: Option<Seq>) -> ClientMessage {
        ClientMessage::Hello {
            protocol: PROTOCOL_VERSION,
            after,
        }
    }

    /// Opens a room's socket (batched frames) whose URL carries `first` as its first frame.
    pub async fn connect_with_first_frame(
        &self,
        slug: &str,
        first: &ClientMessage,
    ) -> Result<RoomSocket> {
        let url = format!(
            "{}?{}&{}",
            self.ws_url(slug),
            shared::protocol::BATCH_QUERY,
            shared::protocol::first_frame_query(first)
        );
        RoomSocket::open(&url, Some(&self.origin), Some(&self.cookie))
            .await?
            .map_err(|refusal| anyhow!("upgrade to {slug} refused: {refusal:?}"))
    }

    /// [`Session::join`] over a socket that asked for batched frames.
    pub async fn join_batched(
        &self,
        slug: &str,
        after: Option<Seq>,
    ) -> Result<(RoomSocket, Joined)> {
        let mut socket = self.connect_batched(slug).await?;
        let joined = socket.hello(after).await?;
        Ok((socket, joined))
    }
}

fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .find(|pair| pair.starts_with(&format!("{COOKIE_NAME}=")))
        .map(str::to_string)
}

/// An upgrade the server answered with an HTTP error instead of `101`.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The error body, when it was one.
    pub body: Option<ErrorBody>,
}

/// What arrived on a socket.
#[derive(Debug, Clone)]
// One value per frame read in a test; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum Incoming {
    /// A server frame.
    Message(ServerMessage),
    /// The server closed the socket (or the connection ended, with no code).
    Closed {
        /// The close code, when the server sent one.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
}

/// What a completed hello returned.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Who the server says we are.
    pub you: Author,
    /// The room's directory entry.
    pub room: RoomInfo,
    /// The room's head at the welcome.
    pub head: Seq,
    /// Who was present.
    pub present: Vec<Member>,
    /// The page sent after the welcome, when it sent a page.
    pub history: Option<History>,
    /// The replayed events, when it replayed (all batches, in order).
    pub replay: Vec<Event>,
    /// How many replay frames carried them.
    pub replay_frames: usize,
}

/// A `History` frame's contents.
#[derive(Debug, Clone)]
pub struct History {
    /// Messages, oldest first.
    pub messages: Vec<MessageView>,
    /// Whether older ones exist.
    pub has_more: bool,
    /// Why the page was sent.
    pub reason: HistoryReason,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One WebSocket to a room.
pub struct RoomSocket {
    ws: Ws,
    /// Frames a helper read past while waiting for something else; read first.
    stash: VecDeque<ServerMessage>,
    closed: bool,
    /// Frames read that carried more than one message (a batch).
    batches: u64,
    /// The upgrade response's `Server-Timing` header.
    timing: Option<String>,
}

impl RoomSocket {
    /// Whether the room admitted this socket on a verification it remembered from a connect of
    /// the same cookies moments before (its `Server-Timing: join;desc="reused"`), rather than
    /// on one the Worker made for this upgrade.
    pub fn reused_verification(&self) -> bool {
        self.timing
            .as_deref()
            .is_some_and(|t| t.contains("join;desc=\"reused\""))
    }

    /// Opens a socket with the given `Origin` and `Cookie` headers (either may be left out to
    /// test the server's refusals). The outer error is a transport failure; the inner one the
    /// server's HTTP refusal of the upgrade.
    pub async fn open(
        url: &str,
        origin: Option<&str>,
        cookie: Option<&str>,
    ) -> Result<Result<RoomSocket, Refusal>> {
        Self::open_from(url, origin, cookie, None).await
    }

    /// [`RoomSocket::open`] as if from the client address `client_ip` (`CF-Connecting-IP`,
    /// which the dev server sets to the peer's address only when a request carries none;
    /// Cloudflare's edge always sets it itself). `None`: the test's own address.
    pub async fn open_from(
        url: &str,
        origin: Option<&str>,
        cookie: Option<&str>,
        client_ip: Option<&str>,
    ) -> Result<Result<RoomSocket, Refusal>> {
        let mut request = url.into_client_request()?;
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", HeaderValue::from_str(origin)?);
        }
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("Cookie", HeaderValue::from_str(cookie)?);
        }
        if let Some(ip) = client_ip {
            request
                .headers_mut()
                .insert(CLIENT_IP_HEADER, HeaderValue::from_str(ip)?);
        }
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(DEFAULT_TIMEOUT, connect).await {
            Err(_) => bail!("no answer to the upgrade of {url} within {DEFAULT_TIMEOUT:?}"),
            Ok(Ok((ws, response))) => Ok(Ok(RoomSocket {
                ws,
                stash: VecDeque::new(),
                batches: 0,
                closed: false,
                timing: response
                    .headers()
                    .get("Server-Timing")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            })),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let body = match response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok())
                {
                    Some(body) => Some(body),
                    None => refusal_body(url, origin, cookie, client_ip, status).await?,
                };
                Ok(Err(Refusal { status, body }))
            }
            Ok(Err(e)) => Err(anyhow!(e).context(format!("connecting to {url}"))),
        }
    }

    /// The underlying stream, for load generators that split it into a reader and a writer.
    /// Presence and typing notices a helper read ahead are dropped (with batching, the answer
    /// to a hello can share a frame with others joining); anything else left queued fails.
    pub fn into_stream(self) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>> {
        let notice = |m: &ServerMessage| {
            matches!(
                m,
                ServerMessage::PresenceJoin { .. }
                    | ServerMessage::PresenceLeave { .. }
                    | ServerMessage::Typing { .. }
            )
        };
        if let Some(kept) = self.stash.iter().find(|m| !notice(m)) {
            bail!(
                "{} frames are still queued, such as {kept:?}",
                self.stash.len()
            );
        }
        Ok(self.ws)
    }

    /// Sends a client message.
    pub async fn send_message(&mut self, message: &ClientMessage) -> Result {
        let text = serde_json::to_string(message)?;
        self.send_text(&text).await
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) -> Result {
        self.ws
            .send(Message::text(text))
            .await
            .context("sending a text frame")
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result {
        self.ws
            .send(Message::binary(bytes))
            .await
            .context("sending a binary frame")
    }

    /// Sends `Send {client_id, text}` without waiting for anything.
    pub async fn send(&mut self, client_id: &str, text: &str) -> Result {
        self.send_message(&ClientMessage::Send {
            client_id: client_id.into(),
            text: text.into(),
            attachments: Vec::new(),
        })
        .await
    }

    /// Edits message `target` and waits for the ack; returns `(seq, duplicate)`.
    pub async fn edit(&mut self, client_id: &str, target: Seq, text: &str) -> Result<(Seq, bool)> {
        self.send_message(&ClientMessage::Edit {
            client_id: client_id.into(),
            target,
            text: text.into(),
        })
        .await?;
        self.await_ack(client_id).await
    }

    /// Deletes message `target` and waits for the ack; returns `(seq, duplicate)`.
    pub async fn delete(&mut self, client_id: &str, target: Seq) -> Result<(Seq, bool)> {
        self.send_message(&ClientMessage::Delete {
            client_id: client_id.into(),
            target,
        })
        .await?;
        self.await_ack(client_id).await
    }

    /// Sends a message and waits for its ack; returns `(seq, duplicate)`. Other frames read
    /// meanwhile stay queued for the next read. An error frame for this send fails.
    pub async fn post(&mut self, client_id: &str, text: &str) -> Result<(Seq, bool)> {
        self.send(client_id, text).await?;
        self.await_ack(client_id).await
    }

    /// Waits for the ack (or error) of a mutation; other frames stay queued.
    pub async fn await_ack(&mut self, client_id: &str) -> Result<(Seq, bool)> {
        let mut skipped = Vec::new();
        let result = loop {
            let message = match self.read_next(DEFAULT_TIMEOUT).await {
                Ok(m) => m,
                Err(e) => break Err(e),
            };
            match &message {
                ServerMessage::Ack {
                    client_id: id,
                    seq,
                    duplicate,
                } if id == client_id => break Ok((*seq, *duplicate)),
                ServerMessage::Error {
                    client_id: Some(id),
                    code,
                    message,
                    ..
                } if id == client_id => {
                    break Err(anyhow!("{client_id} refused: {code}: {message}"))
                }
                _ => skipped.push(message),
            }
        };
        // Keep what was read past, in order, ahead of anything not yet read.
        for message in skipped.into_iter().rev() {
            self.stash.push_front(message);
        }
        result.with_context(|| format!("waiting for the ack of {client_id}"))
    }

    /// Sends the hello and reads the welcome and the page or replay that follow.
    /// Sends a mutation or command frame and reads its answer: `Ok` for its ack (or
    /// `applied`), `Err` with the code of its error.
    pub async fn answer(
        &mut self,
        message: &ClientMessage,
        client_id: &str,
    ) -> Result<std::result::Result<(), ErrorCode>> {
        self.send_message(message).await?;
        let (found, _) = self
            .expect_until(DEFAULT_TIMEOUT, |m| match m {
                ServerMessage::Ack { client_id: id, .. }
                | ServerMessage::Applied { client_id: id }
                    if id == client_id =>
                {
                    Some(Ok(()))
                }
                ServerMessage::Error {
                    client_id: Some(id),
                    code,
                    ..
                } if id == client_id => Some(Err(*code)),
                _ => None,
            })
            .await?;
        Ok(found)
    }

    pub async fn hello(&mut self, after: Option<Seq>) -> Result<Joined> {
        self.send_message(&ClientMessage::Hello {
            protocol: PROTOCOL_VERSION,
            after,
        })
        .await?;
        self.joined().await
    }

    /// Reads the room's answer to a hello (sent as a frame, or in the socket URL): the
    /// welcome, then the page or replay that follows it.
    pub async fn joined(&mut self) -> Result<Joined> {
        let (you, room, head, present) = match self.next_message(DEFAULT_TIMEOUT).await? {
            ServerMessage::Welcome {
                protocol,
                you,
                room,
                head,
                present,
                ..
            } => {
                if protocol != PROTOCOL_VERSION {
                    bail!("welcome speaks protocol {protocol}, we speak {PROTOCOL_VERSION}");
                }
                (you, room, head, present)
            }
            other => bail!("expected a welcome after the hello, got {other:?}"),
        };
        let mut joined = Joined {
            you,
            room,
            head,
            present,
            history: None,
            replay: Vec::new(),
            replay_frames: 0,
        };
        loop {
            match self.next_message(DEFAULT_TIMEOUT).await? {
                ServerMessage::History {
                    messages,
                    has_more,
                    reason,
                } => {
                    joined.history = Some(History {
                        messages,
                        has_more,
                        reason,
                    });
                    return Ok(joined);
                }
                ServerMessage::Replay { events, done } => {
                    joined.replay.extend(events);
                    joined.replay_frames += 1;
                    if done {
                        return Ok(joined);
                    }
                }
                other => bail!("expected history or replay after the welcome, got {other:?}"),
            }
        }
    }

    /// The next frame or the close, within `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Incoming> {
        if let Some(message) = self.stash.pop_front() {
            return Ok(Incoming::Message(message));
        }
        let text = match self.next_raw(timeout).await? {
            RawIncoming::Text(text) => text,
            RawIncoming::Closed { code, reason } => return Ok(Incoming::Closed { code, reason }),
        };
        // One message, or several in one frame for a socket that asked for batches; the rest wait
        // in the stash, in order.
        let mut messages = shared::protocol::decode_frames(&text)
            .with_context(|| format!("server sent a frame that is not a ServerMessage: {text}"))?
            .into_iter();
        let first = messages
            .next()
            .with_context(|| format!("server sent an empty batch: {text}"))?;
        if messages.len() > 0 {
            self.batches += 1;
        }
        self.stash.extend(messages);
        Ok(Incoming::Message(first))
    }

    /// How many frames read so far carried more than one message.
    pub fn batches_read(&self) -> u64 {
        self.batches
    }

    /// The next frame or the close, or `None` when nothing arrived within `timeout` (for
    /// loops that poll several things; a frame that is not a `ServerMessage` is still an
    /// error).
    pub async fn try_next_frame(&mut self, timeout: Duration) -> Result<Option<Incoming>> {
        if let Some(message) = self.stash.pop_front() {
            return Ok(Some(Incoming::Message(message)));
        }
        if self.closed {
            bail!("the socket is already closed");
        }
        let text =
            match tokio::time::timeout(timeout, self.next_raw(timeout + Duration::from_secs(1)))
                .await
            {
                Err(_) => return Ok(None),
                Ok(raw) => match raw? {
                    RawIncoming::Text(text) => text,
                    RawIncoming::Closed { code, reason } => {
                        return Ok(Some(Incoming::Closed { code, reason }))
                    }
                },
            };
        let message = serde_json::from_str(&text)
            .with_context(|| format!("server sent a frame that is not a ServerMessage: {text}"))?;
        Ok(Some(Incoming::Message(message)))
    }

    /// The next server message within `timeout`; a close is an error.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<ServerMessage> {
        self.read_next(timeout).await
    }

    async fn read_next(&mut self, timeout: Duration) -> Result<ServerMessage> {
        match self.next_frame(timeout).await? {
            Incoming::Message(message) => Ok(message),
            Incoming::Closed { code, reason } => {
                bail!("socket closed (code {code:?}, reason {reason:?}) while a frame was expected")
            }
        }
    }

    /// The next text frame exactly as the server sent it (no stash, no parsing).
    pub async fn next_text(&mut self, timeout: Duration) -> Result<String> {
        if !self.stash.is_empty() {
            bail!("frames are queued; read them before asking for raw text");
        }
        match self.next_raw(timeout).await? {
            RawIncoming::Text(text) => Ok(text),
            RawIncoming::Closed { code, reason } => {
                bail!("socket closed (code {code:?}, reason {reason:?}) while text was expected")
            }
        }
    }

    /// Reads frames until `pick` returns something, within `timeout` overall. Frames before
    /// the match are returned too, so a test can assert what came first.
    pub async fn expect_until<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> Result<(T, Vec<ServerMessage>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.read_next(left).await.with_context(|| {
                format!(
                    "the expected frame did not arrive; read before it: {}",
                    summarize(&before)
                )
            })?;
            if let Some(found) = pick(&message) {
                return Ok((found, before));
            }
            before.push(message);
        }
    }

    /// The next event frame (skipping presence, typing and other non-event frames).
    pub async fn next_event(&mut self) -> Result<Event> {
        let (event, _) = self
            .expect_until(DEFAULT_TIMEOUT, |m| match m {
                ServerMessage::Event { event } => Some(event.clone()),
                _ => None,
            })
            .await?;
        Ok(event)
    }

    /// Reads until the server closes the socket; returns the code, the reason and the
    /// messages that came before the close.
    pub async fn expect_close(
        &mut self,
        timeout: Duration,
    ) -> Result<(Option<u16>, String, Vec<ServerMessage>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await.with_context(|| {
                format!(
                    "the socket was not closed; read meanwhile: {}",
                    summarize(&before)
                )
            })? {
                Incoming::Message(message) => before.push(message),
                Incoming::Closed { code, reason } => return Ok((code, reason, before)),
            }
        }
    }

    /// Whether the server closed the socket or the connection ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Writes the first `cut` bytes of a client text frame carrying `text` straight to the TCP
    /// stream, as a client cut off mid-write would, leaving the frame unfinished. `cut` is
    /// clamped to leave at least one byte out.
    pub async fn send_partial_frame(&mut self, text: &str, cut: usize) -> Result {
        use tokio::io::AsyncWriteExt as _;
        let frame = masked_text_frame(text.as_bytes());
        let cut = cut.clamp(1, frame.len() - 1);
        match self.ws.get_mut() {
            MaybeTlsStream::Plain(tcp) => {
                tcp.write_all(&frame[..cut])
                    .await
                    .context("writing part of a frame")?;
                tcp.flush().await.context("flushing part of a frame")?;
                Ok(())
            }
            _ => bail!("only plain ws:// sockets are written to directly"),
        }
    }

    /// Drops the connection without a close handshake, as a lost network or a killed tab
    /// does: the server learns it from the TCP connection ending.
    pub fn abort(self) {
        drop(self.ws);
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }

    async fn next_raw(&mut self, timeout: Duration) -> Result<RawIncoming> {
        if self.closed {
            bail!("the socket is already closed");
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("no frame within {timeout:?}"))?;
            match next {
                None => {
                    self.closed = true;
                    return Ok(RawIncoming::Closed {
                        code: None,
                        reason: String::new(),
                    });
                }
                Some(Err(e)) => {
                    self.closed = true;
                    return match e {
                        tungstenite::Error::ConnectionClosed
                        | tungstenite::Error::AlreadyClosed
                        | tungstenite::Error::Protocol(_)
                        | tungstenite::Error::Io(_) => Ok(RawIncoming::Closed {
                            code: None,
                            reason: e.to_string(),
                        }),
                        other => Err(anyhow!(other).context("reading the socket")),
                    };
                }
                Some(Ok(Message::Text(text))) => return Ok(RawIncoming::Text(text.to_string())),
                Some(Ok(Message::Close(frame))) => {
                    self.closed = true;
                    return Ok(RawIncoming::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    });
                }
                Some(Ok(Message::Binary(bytes))) => {
                    bail!("server sent a binary frame of {} bytes", bytes.len())
                }
                // Control frames: tungstenite answers pings itself.
                Some(Ok(_)) => {}
            }
        }
    }
}

/// One masked client text frame (RFC 6455 section 5.2), FIN set.
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut mask = [0u8; 4];
    if getrandom::fill(&mut mask).is_err() {
        mask = [0x5a, 0x17, 0xc3, 0x88];
    }
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// tungstenite keeps only the body bytes that arrived with the refusal's headers, which may be
/// none; the same upgrade request over plain HTTP gets the whole body. The server answers it
/// the same way (the refusal happens before any upgrade), which is checked by the status.
async fn refusal_body(
    url: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
    client_ip: Option<&str>,
    status: u16,
) -> Result<Option<ErrorBody>> {
    let http_url = url.replacen("ws://", "http://", 1);
    let mut request = http()
        .get(&http_url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    if let Some(ip) = client_ip {
        request = request.header(CLIENT_IP_HEADER, ip);
    }
    let response = request.send().await.context("re-reading a refusal")?;
    let again = response.status().as_u16();
    if again != status {
        bail!("the upgrade was refused with {status}, the same request over HTTP got {again}");
    }
    let bytes = response.bytes().await?;
    Ok(serde_json::from_slice(&bytes).ok())
}

enum RawIncoming {
    Text(String),
    Closed { code: Option<u16>, reason: String },
}

/// A short description of frames, for failure messages.
pub fn summarize(messages: &[ServerMessage]) -> String {
    if messages.is_empty() {
        return "nothing".into();
    }
    let parts: Vec<String> = messages
        .iter()
        .map(|m| {
            let s = format!("{m:?}");
            if s.len() > 160 {
                format!("{}…", &s[..s.floor_char_boundary(160)])
            } else {
                s
            }
        })
        .collect();
    parts.join("; ")
}

/// The text of a message event, if it is one.
pub fn message_text(event: &Event) -> Option<&str> {
    match &event.kind {
        shared::protocol::EventKind::Message { text, .. } => Some(text),
        _ => None,
    }
}
