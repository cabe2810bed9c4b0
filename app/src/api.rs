//! The HTTP API (same origin, JSON, errors as `ErrorBody`).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use shared::auth::{DevLogin, DeviceList, LoginOptions, Provider, Revoked};
use shared::moderation::http::{
    AdminRooms, AdminUsers, AuditPage, InviteList, JoinRoom, MemberList, UpdateUser,
};
use shared::moderation::{Command, CreateInvite, Invite};
use shared::profile::{Profile, PublicProfile};
use shared::protocol::http::{
    BeginUpload, Context, CreateRoom, CreateSession, ErrorBody, FileList, LinkPreview, RoomList,
    SearchResults, SessionInfo, SessionState, UploadTicket,
};
use shared::protocol::{RoomInfo, Seq};
use shared::ErrorCode;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestCredentials, RequestInit, Response};

use crate::web::window;

/// A failed API call: the server's code and safe message, or a network failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (0 when the request never got an answer).
    pub status: u16,
    /// The stable code.
    pub code: ErrorCode,
    /// A message safe to show.
    pub message: String,
}

impl ApiError {
    /// The request got no answer (offline, or the connection dropped).
    pub fn network() -> Self {
        ApiError {
            status: 0,
            code: ErrorCode::Unknown,
            message: "Could not reach the server. Check your connection and try again.".into(),
        }
    }
}

async fn call<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<T, ApiError> {
    let content_type = body.as_ref().map(|_| "application/json");
    let body = body.map(|b| JsValue::from_str(&b));
    send(method, path, body.as_ref(), content_type).await
}

/// A request and its answer as `T`. Only the reading is generic: the request itself is one
/// function for every answer type, not a copy per type in the app's download.
async fn send<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<&JsValue>,
    content_type: Option<&str>,
) -> Result<T, ApiError> {
    let (status, ok, text) = exchange(method, path, body, content_type).await?;
    read_answer(status, ok, &text)
}

/// Makes a request: (status, whether it is a success, the body as text).
async fn exchange(
    method: &str,
    path: &str,
    body: Option<&JsValue>,
    content_type: Option<&str>,
) -> Result<(u16, bool, String), ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(RequestCredentials::SameOrigin);
    if let Some(body) = body {
        init.set_body(body);
    }
    let request = Request::new_with_str_and_init(path, &init).map_err(|_| ApiError::network())?;
    let headers = request.headers();
    let _ = headers.set("Accept", "application/json");
    if let Some(content_type) = content_type {
        let _ = headers.set("Content-Type", content_type);
    }
    let response: Response = JsFuture::from(window().fetch_with_request(&request))
        .await
        .map_err(|_| {
            crate::report::network_failure(method, path);
            ApiError::network()
        })?
        .unchecked_into();
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let status = response.status();
    if status >= 500 {
        // The server's failure, reported by route, status and code only (`crate::report`).
        let code = refusal(status, &text).code;
        crate::report::failed_request(method, path, Some(status), Some(code.as_str()));
    }
    Ok((status, response.ok(), text))
}

/// An answer's body as `T`, or the error it carries (`ErrorBody`, or the status alone). Only
/// the parse of `T` is generic; the errors are built once ([`refusal`]).
pub(crate) fn read_answer<T: DeserializeOwned>(
    status: u16,
    ok: bool,
    text: &str,
) -> Result<T, ApiError> {
    if !ok {
        return Err(refusal(status, text));
    }
    // A 204 has no body: read it as JSON null (for callers expecting `()` or `Option`).
    let text = if text.is_empty() { "null" } else { text };
    serde_json::from_str(text).map_err(|_| ApiError {
        status,
        code: ErrorCode::Unknown,
        message: "The server sent an unexpected answer.".into(),
    })
}

/// The error a failed answer carries.
fn refusal(status: u16, text: &str) -> ApiError {
    if status == 0 {
        return ApiError::network();
    }
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => ApiError {
            status,
            code: body.code,
            message: body.message,
        },
        Err(_) => ApiError {
            status,
            code: if status == 401 {
                ErrorCode::Unauthorized
            } else {
                ErrorCode::Unknown
            },
            message: format!("The server answered {status}."),
        },
    }
}

fn json(value: &impl Serialize) -> Option<String> {
    serde_json::to_string(value).ok()
}

/// `GET /api/session`: who we are, or `unauthorized`.
pub async fn session() -> Result<SessionInfo, ApiError> {
    call("GET", "/api/session", None).await
}

/// `GET /api/session?optional=1`: who we are, or `None` (200 either way, so a new visitor's
/// start logs no failed request in the console).
pub async fn session_state() -> Result<Option<SessionInfo>, ApiError> {
    call::<SessionState>("GET", SessionState::PATH, None)
        .await
        .map(|state| state.session)
}

/// `GET /api/rooms/{slug}/admission`: whether the room would take our socket now (204), or
/// why not — the refusal its upgrade gave, which a browser cannot read from the socket.
pub async fn admission(slug: &str) -> Result<(), ApiError> {
    call("GET", &format!("/api/rooms/{slug}/admission"), None).await
}

/// `POST /api/session`: choose a display name.
pub async fn create_session(name: String) -> Result<SessionInfo, ApiError> {
    call("POST", "/api/session", json(&CreateSession { name })).await
}

/// `GET /api/rooms`.
pub async fn rooms() -> Result<RoomList, ApiError> {
    call("GET", "/api/rooms", None).await
}

/// `GET /api/rooms/{slug}/search?q=` (one room) or `GET /api/search?q=` (all your rooms).
pub async fn search(slug: Option<&str>, query: &str) -> Result<SearchResults, ApiError> {
    let q = String::from(js_sys::encode_uri_component(query));
    let path = match slug {
        Some(slug) => format!("/api/rooms/{slug}/search?q={q}"),
        None => format!("/api/search?q={q}"),
    };
    call("GET", &path, None).await
}

/// `GET /api/rooms/{slug}/context?seq=`: the page around a message.
pub async fn context(slug: &str, seq: Seq) -> Result<Context, ApiError> {
    call("GET", &format!("/api/rooms/{slug}/context?seq={seq}"), None).await
}

/// `POST /api/rooms`.
pub async fn create_room(
    name: String,
    topic: String,
    assistant: shared::protocol::AssistantMode,
    private: bool,
) -> Result<RoomInfo, ApiError> {
    call(
        "POST",
        "/api/rooms",
        json(&CreateRoom {
            name,
            topic,
            assistant,
            private,
        }),
    )
    .await
}

/// `GET /api/auth/providers`: the sign-in buttons to show.
pub async fn login_options() -> Result<LoginOptions, ApiError> {
    call("GET", "/api/auth/providers", None).await
}

/// `POST /api/auth/local`: the dev server's local account.
pub async fn dev_login(name: String) -> Result<SessionInfo, ApiError> {
    call("POST", "/api/auth/local", json(&DevLogin { name })).await
}

/// `DELETE /api/session`: signs out (the server ends the session).
pub async fn sign_out() -> Result<(), ApiError> {
    call("DELETE", "/api/session", None).await
}

/// `GET /api/sessions`: this account's signed-in devices.
pub async fn devices() -> Result<DeviceList, ApiError> {
    call("GET", "/api/sessions", None).await
}

/// `DELETE /api/sessions/<id>`: signs one device out.
pub async fn revoke(id: &str) -> Result<Revoked, ApiError> {
    call("DELETE", &format!("/api/sessions/{id}"), None).await
}

/// `DELETE /api/auth/identities/<provider>`: unlinks a provider; the session as it now is.
pub async fn unlink(provider: Provider) -> Result<SessionInfo, ApiError> {
    call(
        "DELETE",
        &format!("/api/auth/identities/{}", provider.as_str()),
        None,
    )
    .await
}

/// `POST /api/sessions/revoke-others`: signs every other device out.
pub async fn revoke_others() -> Result<Revoked, ApiError> {
    call("POST", "/api/sessions/revoke-others", None).await
}

/// `POST /api/me/assistant`: the user's private room with the assistant (made on first use).
pub async fn assistant_room() -> Result<RoomInfo, ApiError> {
    call("POST", "/api/me/assistant", None).await
}

/// One fact the assistant remembers about the user.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Fact {
    /// Id, for deleting it.
    pub id: f64,
    /// The fact.
    pub fact: String,
}

/// `GET /api/me/memory`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Memory {
    /// Oldest first.
    pub facts: Vec<Fact>,
}

/// `GET /api/me/memory`: what the assistant remembers about the user.
pub async fn memory() -> Result<Memory, ApiError> {
    call("GET", "/api/me/memory", None).await
}

/// `DELETE /api/me/memory[/<id>]`: forgets one fact, or all.
pub async fn forget(id: Option<f64>) -> Result<serde::de::IgnoredAny, ApiError> {
    let path = match id {
        Some(id) => format!("/api/me/memory/{id}"),
        None => "/api/me/memory".into(),
    };
    call("DELETE", &path, None).await
}

/// `GET /api/admin/ai`: the assistant's aggregates (admins).
pub async fn admin_ai() -> Result<serde_json::Value, ApiError> {
    call("GET", "/api/admin/ai", None).await
}

/// `GET /api/profile`.
pub async fn profile() -> Result<Profile, ApiError> {
    call("GET", "/api/profile", None).await
}

/// `PUT /api/profile`.
pub async fn save_profile(profile: &Profile) -> Result<Profile, ApiError> {
    call("PUT", "/api/profile", json(profile)).await
}

/// `PUT /api/profile/avatar`: the image's bytes as the body (checked by the server by content).
pub async fn upload_avatar(image: &web_sys::Blob) -> Result<Profile, ApiError> {
    let content_type = image.type_();
    send(
        "PUT",
        "/api/profile/avatar",
        Some(image.as_ref()),
        Some(&content_type),
    )
    .await
}

/// `GET /api/users/<id>`: a profile card.
pub async fn user(user_id: &str) -> Result<PublicProfile, ApiError> {
    call("GET", &format!("/api/users/{user_id}"), None).await
}

/// `GET /api/rooms/<slug>/members`.
pub async fn members(slug: &str) -> Result<MemberList, ApiError> {
    call("GET", &format!("/api/rooms/{slug}/members"), None).await
}

/// `GET /api/rooms/<slug>/audit`.
pub async fn room_audit(slug: &str) -> Result<AuditPage, ApiError> {
    call("GET", &format!("/api/rooms/{slug}/audit"), None).await
}

/// `GET /api/rooms/<slug>/invites`.
pub async fn invites(slug: &str) -> Result<InviteList, ApiError> {
    call("GET", &format!("/api/rooms/{slug}/invites"), None).await
}

/// `POST /api/rooms/<slug>/invites`.
pub async fn create_invite(slug: &str, request: &CreateInvite) -> Result<Invite, ApiError> {
    call("POST", &format!("/api/rooms/{slug}/invites"), json(request)).await
}

/// `POST /api/rooms/<slug>/moderation`.
pub async fn moderate(slug: &str, command: &Command) -> Result<IgnoredAny, ApiError> {
    call(
        "POST",
        &format!("/api/rooms/{slug}/moderation"),
        json(command),
    )
    .await
}

/// `POST /api/rooms/<slug>/join` with an invite.
pub async fn join(slug: &str, invite: &str) -> Result<IgnoredAny, ApiError> {
    call(
        "POST",
        &format!("/api/rooms/{slug}/join"),
        json(&JoinRoom {
            invite: Some(invite.to_owned()),
        }),
    )
    .await
}

/// `GET /api/admin/users?q=`.
pub async fn admin_users(query: &str) -> Result<AdminUsers, ApiError> {
    let q = js_sys::encode_uri_component(query);
    call("GET", &format!("/api/admin/users?q={q}"), None).await
}

/// `POST /api/admin/users/<id>`.
pub async fn admin_update_user(user_id: &str, update: &UpdateUser) -> Result<IgnoredAny, ApiError> {
    call("POST", &format!("/api/admin/users/{user_id}"), json(update)).await
}

/// `GET /api/admin/rooms`.
pub async fn admin_rooms() -> Result<AdminRooms, ApiError> {
    call("GET", "/api/admin/rooms", None).await
}

/// `GET /api/admin/audit`.
pub async fn admin_audit() -> Result<AuditPage, ApiError> {
    call("GET", "/api/admin/audit", None).await
}

/// `GET /api/admin/settings`: every setting and where its value comes from (global admins;
/// `not_found` for anyone else).
pub async fn admin_settings() -> Result<shared::settings::SettingsView, ApiError> {
    call("GET", "/api/admin/settings", None).await
}

/// `PUT /api/admin/settings`: saves (or clears) settings; a result per setting.
pub async fn save_settings(
    save: &shared::settings::SaveSettings,
) -> Result<shared::settings::SaveOutcome, ApiError> {
    call("PUT", "/api/admin/settings", json(save)).await
}

/// `GET /api/admin/analytics?range=…` (global admins; `not_found` for anyone else), or with a
/// room, `GET /api/rooms/<slug>/analytics?range=…` (its owner and admins).
pub async fn analytics(
    room: Option<&str>,
    range: shared::metrics::Range,
) -> Result<shared::metrics::Analytics, ApiError> {
    let path = match room {
        Some(slug) => format!(
            "/api/rooms/{}/analytics?range={}",
            js_sys::encode_uri_component(slug),
            range.as_str()
        ),
        None => format!("/api/admin/analytics?range={}", range.as_str()),
    };
    call("GET", &path, None).await
}

/// `POST /api/rooms/<slug>/uploads`: announces a file; the same `upload_id` always gets the
/// same ticket (with `stored` once its bytes are in).
pub async fn begin_upload(slug: &str, request: &BeginUpload) -> Result<UploadTicket, ApiError> {
    call("POST", &format!("/api/rooms/{slug}/uploads"), json(request)).await
}

/// `PUT /api/rooms/<slug>/uploads/<id>/thumb`: the thumbnail the browser made.
pub async fn put_thumb(slug: &str, id: &str, image: &web_sys::Blob) -> Result<(), ApiError> {
    let content_type = image.type_();
    send::<IgnoredAny>(
        "PUT",
        &format!("/api/rooms/{slug}/uploads/{id}/thumb"),
        Some(image.as_ref()),
        Some(&content_type),
    )
    .await
    .map(|_| ())
}

/// `DELETE /api/rooms/<slug>/uploads/<id>`: the sender cancelled the upload.
pub async fn cancel_upload(slug: &str, id: &str) -> Result<(), ApiError> {
    call::<IgnoredAny>("DELETE", &format!("/api/rooms/{slug}/uploads/{id}"), None)
        .await
        .map(|_| ())
}

/// `GET /api/rooms/<slug>/files?kind=&before=`: the room's files, newest first.
pub async fn files(
    slug: &str,
    kind: Option<&str>,
    before: Option<Seq>,
) -> Result<FileList, ApiError> {
    let mut query = Vec::new();
    if let Some(kind) = kind {
        query.push(format!("kind={kind}"));
    }
    if let Some(before) = before {
        query.push(format!("before={before}"));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    call("GET", &format!("/api/rooms/{slug}/files{query}"), None).await
}

/// `GET /api/preview?url=`: what a linked page says about itself; `None` when it says nothing
/// (204).
pub async fn preview(url: &str) -> Result<Option<LinkPreview>, ApiError> {
    let url = js_sys::encode_uri_component(url);
    call("GET", &format!("/api/preview?url={url}"), None).await
}

/// `GET /api/admin/logs?<query>`: a page of the structured log, newest first (global admins;
/// `not_found` for anyone else).
pub async fn admin_logs(query: &str) -> Result<shared::logs::LogPage, ApiError> {
    call("GET", &format!("/api/admin/logs?{query}"), None).await
}

/// `GET /api/admin/logs/tail?<query>`: what was logged since `after`, newest first.
pub async fn admin_logs_tail(query: &str) -> Result<shared::logs::TailPage, ApiError> {
    call("GET", &format!("/api/admin/logs/tail?{query}"), None).await
}
