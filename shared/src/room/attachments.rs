//! Files in a room: who may upload and read them, the limits, and the life of an upload from
//! announcement to deletion. The Worker moves the bytes (sniffing and scrubbing them on the way
//! to R2); every decision about them is made here, on the room's storage.
//!
//! 1. [`Room::begin_upload`]: a member announces a file; the per-file limit, the room's quota and
//!    the sender's rate are checked, and a ticket (the unguessable id) is issued — the same one
//!    again for a retry with the same upload id.
//! 2. [`Room::upload_target`] then [`Room::upload_stored`]: the Worker stores the bytes under that
//!    id and records what they turned out to be.
//! 3. A send names the ids: [`Room::claim_attachments`] checks they are the sender's, stored and
//!    free, and the store ties them to the message in the transaction that stores it.
//! 4. Deleting the message, cancelling, or a day unattached releases them;
//!    [`Room::droppable_files`] hands the Worker the objects to delete and
//!    [`Room::forget_files`] closes the rows once they are gone.

use super::store::attachments::{Hints, UploadRow};
use super::*;
use crate::limits::{is_attachment_id, UploadLimits, UPLOAD_ORPHAN_MS};
use crate::media::Kind;
use crate::protocol::http::{BeginUpload, FileList, UploadTicket};
use crate::protocol::{Attachment, Label};

/// Files listed per page of the room's "Files" panel.
pub const FILES_PAGE: u32 = 50;
/// Uploads whose objects one sweep deletes (the rest wait for the next).
pub const SWEEP_BATCH: u32 = 100;

/// What the Worker found when it stored an upload's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// The content type the bytes were recognised as.
    pub mime: String,
    /// Their kind.
    pub kind: Kind,
    /// Bytes stored.
    pub size: u64,
    /// What an image classifier saw, most likely first.
    #[serde(default)]
    pub labels: Vec<Label>,
    /// What an audio file says.
    #[serde(default)]
    pub transcript: Option<String>,
}

/// What the room answers about a file someone asked to read.
pub type Readable = Attachment;

fn not_found() -> Failure {
    refused(
        ErrorCode::NotFound,
        "No such file in this room (or it was deleted).",
    )
}

impl<D: Sql> Room<D> {
    /// A member of the room who may post, unbanned and unmuted (uploading is posting).
    fn may_upload(&self, user_id: &str, admin: bool, now: Millis) -> Result<(), Failure> {
        let Some(record) = self.store.member(user_id)? else {
            return Err(refused(
                ErrorCode::Forbidden,
                "Join the room before sharing files in it.",
            ));
        };
        if record.banned && !admin {
            return Err(Failure::Refused(ChatError::new(
                ErrorCode::Banned,
                "You are banned from this room.",
            )));
        }
        if let Some(left) = record.mute_left(now) {
            return Err(Failure::Refused(ChatError::muted(left)));
        }
        if !may(record.role, admin, Action::Post) {
            return Err(forbidden());
        }
        Ok(())
    }

    /// A member who may read the room's files: a member record that is not banned (a global
    /// admin always). Anyone else is told the file does not exist: a file's existence is
    /// itself the room's business.
    fn may_read_files(&self, user_id: &str, admin: bool) -> Result<(), Failure> {
        match self.store.member(user_id)? {
            _ if admin => Ok(()),
            Some(record) if !record.banned => Ok(()),
            _ => Err(not_found()),
        }
    }

    /// Announces an upload (step 1): checks the limits and issues the ticket, or returns the
    /// earlier ticket for the same `upload_id` (with the stored attachment when the bytes are
    /// already stored).
    pub fn begin_upload(
        &mut self,
        user_id: &str,
        admin: bool,
        request: &BeginUpload,
        limits: &UploadLimits,
        now: Millis,
        new_id: impl FnOnce() -> String,
    ) -> Result<UploadTicket, Failure> {
        crate::limits::validate_begin_upload(request, limits).map_err(Failure::Refused)?;
        self.may_upload(user_id, admin, now)?;
        if let Some(row) = self.store.upload_by_client(user_id, &request.upload_id)? {
            if row.gone_at.is_some() || row.message.is_some() {
                return Err(refused(
                    ErrorCode::Conflict,
                    "This upload was already sent or cancelled; start a new one.",
                ));
            }
            return Ok(UploadTicket {
                stored: row.stored(),
                id: row.id,
            });
        }
        let window = now - 60_000;
        if self.store.uploads_since(user_id, window)? >= limits.uploads_per_minute {
            return Err(Failure::Refused(ChatError {
                code: ErrorCode::RateLimited,
                message: format!(
                    "You can share {} files a minute in a room; wait a moment.",
                    limits.uploads_per_minute
                ),
                retry_after_ms: Some(60_000),
            }));
        }
        let used = self.store.upload_bytes()?;
        if used.saturating_add(request.size) > limits.room_quota_bytes {
            return Err(refused(
                ErrorCode::QuotaExceeded,
                format!(
                    "This room's files use {} of its {}; delete some to share more.",
                    crate::limits::human_bytes(used),
                    crate::limits::human_bytes(limits.room_quota_bytes)
                ),
            ));
        }
        let id = new_id();
        if !is_attachment_id(&id) {
            return Err(Failure::Storage(format!("malformed attachment id {id:?}")));
        }
        self.store.insert_upload(&UploadRow {
            id: id.clone(),
            uploader: user_id.to_owned(),
            client_id: request.upload_id.clone(),
            name: crate::media::name::sanitize_file_name(&request.name),
            size: request.size,
            created_at: now,
            hints: Hints {
                width: request.width,
                height: request.height,
                duration_ms: request.duration_ms,
            },
            attachment: None,
            thumb: false,
            message: None,
            gone_at: None,
        })?;
        Ok(UploadTicket { id, stored: None })
    }

    /// The upload `id` its uploader may now store bytes for (step 2): theirs, not sent, not
    /// cancelled. A stored one may be stored again (a retry writes the same object).
    pub fn upload_target(&self, user_id: &str, id: &str) -> Result<UploadRow, Failure> {
        if !is_attachment_id(id) {
            return Err(not_found());
        }
        match self.store.upload(id)? {
            Some(row) if row.uploader == user_id && row.gone_at.is_none() => {
                if row.message.is_some() {
                    return Err(refused(
                        ErrorCode::Conflict,
                        "This file is already part of a message.",
                    ));
                }
                Ok(row)
            }
            _ => Err(not_found()),
        }
    }

    /// Records what the Worker stored for upload `id` and returns it as messages will carry it.
    pub fn upload_stored(
        &mut self,
        user_id: &str,
        id: &str,
        file: StoredFile,
    ) -> Result<Attachment, Failure> {
        let row = self.upload_target(user_id, id)?;
        if file.size != row.size {
            return Err(refused(
                ErrorCode::InvalidInput,
                format!(
                    "The upload sent {} bytes; {} were announced.",
                    file.size, row.size
                ),
            ));
        }
        let visual = matches!(file.kind, Kind::Image | Kind::Video);
        let timed = matches!(file.kind, Kind::Audio | Kind::Video);
        let attachment = Attachment {
            id: row.id.clone(),
            name: row.name.clone(),
            size: file.size,
            mime: file.mime,
            kind: file.kind,
            width: row.hints.width.filter(|_| visual),
            height: row.hints.height.filter(|_| visual),
            duration_ms: row.hints.duration_ms.filter(|_| timed),
            thumb: row.thumb,
            labels: file.labels,
            transcript: file.transcript,
        };
        self.store.set_upload_stored(&attachment)?;
        Ok(attachment)
    }

    /// Records that upload `id` has a thumbnail.
    pub fn thumb_stored(&mut self, user_id: &str, id: &str) -> Result<(), Failure> {
        let row = self.upload_target(user_id, id)?;
        self.store.set_upload_thumb(&row.id)?;
        Ok(())
    }

    /// Cancels one of the caller's unsent uploads; its object goes with the next sweep.
    pub fn cancel_upload(&mut self, user_id: &str, id: &str, now: Millis) -> Result<(), Failure> {
        if !is_attachment_id(id) || !self.store.release_upload(user_id, id, now)? {
            return Err(not_found());
        }
        Ok(())
    }

    /// The file `id`, for a member to read: attached to a message that stands, or the caller's
    /// own upload that is stored and not yet sent (the sender's preview).
    pub fn file(&self, user_id: &str, admin: bool, id: &str) -> Result<Readable, Failure> {
        self.may_read_files(user_id, admin)?;
        if !is_attachment_id(id) {
            return Err(not_found());
        }
        let row = self.store.upload(id)?.ok_or_else(not_found)?;
        let visible = row.gone_at.is_none() && (row.message.is_some() || row.uploader == user_id);
        match row.stored() {
            Some(attachment) if visible => Ok(attachment),
            _ => Err(not_found()),
        }
    }

    /// The room's "Files" list, newest first.
    pub fn files(
        &self,
        user_id: &str,
        admin: bool,
        kind: Option<Kind>,
        before: Option<Seq>,
    ) -> Result<FileList, Failure> {
        self.may_read_files(user_id, admin)?;
        let (files, more) = self.store.files(kind, before, FILES_PAGE)?;
        let next = more.then(|| files.last().map(|f| f.message)).flatten();
        Ok(FileList { files, next })
    }

    /// The files named by a send (step 3), in its order: each the sender's, stored, not sent
    /// with another message and not cancelled.
    pub(super) fn claim_attachments(
        &self,
        author_id: &str,
        ids: &[String],
    ) -> Result<Vec<Attachment>, Failure> {
        ids.iter()
            .map(|id| {
                let row = self
                    .store
                    .upload(id)?
                    .filter(|row| row.uploader == author_id && row.gone_at.is_none())
                    .ok_or_else(|| {
                        refused(
                            ErrorCode::NotFound,
                            "A file of this message is not one of your uploads here (or it was cancelled).",
                        )
                    })?;
                if row.message.is_some() {
                    return Err(refused(
                        ErrorCode::Conflict,
                        format!("{} is already part of another message.", row.name),
                    ));
                }
                row.stored().ok_or_else(|| {
                    refused(
                        ErrorCode::Conflict,
                        format!("{} has not finished uploading.", row.name),
                    )
                })
            })
            .collect()
    }

    /// The uploads whose objects the Worker should delete now (step 4): released ones, and
    /// those unattached for [`UPLOAD_ORPHAN_MS`] (released by this call).
    pub fn droppable_files(&mut self, now: Millis) -> Result<Vec<String>, Failure> {
        Ok(self
            .store
            .droppable_uploads(now - UPLOAD_ORPHAN_MS, now, SWEEP_BATCH)?)
    }

    /// When the room should next look for files to delete: now when some are released, else
    /// when the oldest unattached upload turns a day old; `None` with nothing waiting.
    pub fn next_file_sweep(&self) -> Result<Option<Millis>, Failure> {
        Ok(self.store.next_upload_sweep(UPLOAD_ORPHAN_MS)?)
    }

    /// Forgets uploads whose objects the Worker deleted.
    pub fn forget_files(&mut self, ids: &[String]) -> Result<(), Failure> {
        Ok(self.store.forget_uploads(ids)?)
    }
}
