//! Uploads and the files of messages: announced, stored, attached to one message in the
//! transaction that stores it, and released for deletion when that message is deleted or when
//! an upload waits too long to be attached. The objects themselves live in R2; these rows are
//! what decides who may read them and when they go.

use super::{json, Row, Sql, SqlStore, StoreError};
use crate::media::Kind;
use crate::protocol::http::FileEntry;
use crate::protocol::{Attachment, Millis, Seq};
use crate::sql_params;

/// The `meta` key of the bytes the room's uploads hold (announced ones included: a quota must
/// count what is on its way).
const UPLOAD_BYTES: &str = "upload_bytes";

const UPLOAD_COLUMNS: &str =
    "id, uploader, client_id, name, size, created_at, hints, attachment, thumb, message, gone_at";

/// An upload as the room keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    /// The attachment id (and the object's name in R2).
    pub id: String,
    /// Who announced it.
    pub uploader: String,
    /// The uploader's id for it (retries of the announcement carry the same one).
    pub client_id: String,
    /// Sanitized file name.
    pub name: String,
    /// Bytes announced (and, once stored, stored).
    pub size: u64,
    /// When it was announced.
    pub created_at: Millis,
    /// What the uploader's browser measured (width, height, duration).
    pub hints: Hints,
    /// Set once the bytes are stored.
    pub attachment: Option<Attachment>,
    /// A thumbnail is stored beside it.
    pub thumb: bool,
    /// The message it is attached to.
    pub message: Option<Seq>,
    /// When it was released for deletion.
    pub gone_at: Option<Millis>,
}

/// Layout hints the sender's browser measured (never trusted for anything but layout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hints {
    /// Pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixels.
    #[serde(default)]
    pub height: Option<u32>,
    /// Playing time.
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

impl UploadRow {
    /// The stored attachment as messages carry it (with whether it has a thumbnail now).
    pub fn stored(&self) -> Option<Attachment> {
        self.attachment.clone().map(|mut a| {
            a.thumb = self.thumb;
            a
        })
    }
}

fn upload_from_row(row: &Row) -> Result<UploadRow, StoreError> {
    Ok(UploadRow {
        id: row.text(0)?,
        uploader: row.text(1)?,
        client_id: row.text(2)?,
        name: row.text(3)?,
        size: row.uint(4)?,
        created_at: row.int(5)?,
        hints: row.opt_json(6)?.unwrap_or_default(),
        attachment: row.opt_json(7)?,
        thumb: row.int(8)? != 0,
        message: row.opt_uint(9)?,
        gone_at: row.opt_int(10)?,
    })
}

fn kind_column(kind: Kind) -> Result<String, StoreError> {
    match serde_json::to_value(kind).map_err(StoreError::new)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(StoreError::new(format!("kind as {other}"))),
    }
}

impl<D: Sql> SqlStore<D> {
    /// The upload `id`.
    pub fn upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        let rows = self.db.query(
            &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = ?"),
            sql_params![id],
        )?;
        rows.first().map(upload_from_row).transpose()
    }

    /// The upload `uploader` announced as `client_id`, if any.
    pub fn upload_by_client(
        &self,
        uploader: &str,
        client_id: &str,
    ) -> Result<Option<UploadRow>, StoreError> {
        let rows = self.db.query(
            &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE uploader = ? AND client_id = ?"),
            sql_params![uploader, client_id],
        )?;
        rows.first().map(upload_from_row).transpose()
    }

    /// Records an announced upload and counts its bytes toward the room's quota, atomically.
    pub fn insert_upload(&self, row: &UploadRow) -> Result<(), StoreError> {
        self.db.transaction(|| {
            self.db.execute(
                "INSERT INTO uploads (id, uploader, client_id, name, size, created_at, hints)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                sql_params![
                    row.id.as_str(),
                    row.uploader.as_str(),
                    row.client_id.as_str(),
                    row.name.as_str(),
                    row.size,
                    row.created_at,
                    json(&row.hints)?
                ],
            )?;
            self.add_upload_bytes(row.size as i64)
        })
    }

    fn add_upload_bytes(&self, delta: i64) -> Result<(), StoreError> {
        self.db.execute(
            // On a Durable Object every number is bound as a JavaScript number, which SQLite
            // stores as a REAL: cast, or the counter is kept as text like `'3145738.0'`.
            "INSERT INTO meta (key, value) VALUES (?1, CAST(?2 AS INTEGER))
             ON CONFLICT (key) DO UPDATE
             SET value = MAX(0, CAST(value AS INTEGER) + CAST(?2 AS INTEGER))",
            sql_params![UPLOAD_BYTES, delta],
        )
    }

    /// Bytes the room's uploads hold or are about to.
    pub fn upload_bytes(&self) -> Result<u64, StoreError> {
        // Read through a cast, which also reads a counter an earlier build stored as a REAL.
        let rows = self.db.query(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?",
            sql_params![UPLOAD_BYTES],
        )?;
        Ok(rows.first().map(|r| r.uint(0)).transpose()?.unwrap_or(0))
    }

    /// Uploads `uploader` announced at or after `since` (the per-user upload rate).
    pub fn uploads_since(&self, uploader: &str, since: Millis) -> Result<u32, StoreError> {
        let rows = self.db.query(
            "SELECT COUNT(*) FROM uploads WHERE uploader = ? AND created_at >= ?",
            sql_params![uploader, since],
        )?;
        Ok(rows.first().map(|r| r.uint(0)).transpose()?.unwrap_or(0) as u32)
    }

    /// Records that an upload's bytes are stored, as `attachment`.
    pub fn set_upload_stored(&self, attachment: &Attachment) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE uploads SET attachment = ?, kind = ? WHERE id = ?",
            sql_params![
                json(attachment)?,
                kind_column(attachment.kind)?,
                attachment.id.as_str()
            ],
        )
    }

    /// Records that an upload's thumbnail is stored.
    pub fn set_upload_thumb(&self, id: &str) -> Result<(), StoreError> {
        self.db
            .execute("UPDATE uploads SET thumb = 1 WHERE id = ?", sql_params![id])
    }

    /// Ties the files of message `seq` to it (inside [`SqlStore::append`]'s transaction: a
    /// stored message never names an upload the sweep could take).
    pub(super) fn attach_uploads(
        &self,
        seq: Seq,
        attachments: &[Attachment],
    ) -> Result<(), StoreError> {
        for (position, attachment) in attachments.iter().enumerate() {
            self.db.execute(
                "UPDATE uploads SET message = ?, position = ? WHERE id = ? AND message IS NULL",
                sql_params![seq, position as i64, attachment.id.as_str()],
            )?;
        }
        Ok(())
    }

    /// Releases the files of deleted message `seq` for deletion (inside the delete's
    /// transaction).
    pub(super) fn release_uploads(&self, seq: Seq, now: Millis) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE uploads SET gone_at = ? WHERE message = ? AND gone_at IS NULL",
            sql_params![now, seq],
        )
    }

    /// Releases one unattached upload (its uploader cancelled it). False when there is no such
    /// upload of theirs, or it is attached already.
    pub fn release_upload(
        &self,
        uploader: &str,
        id: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let Some(row) = self.upload(id)? else {
            return Ok(false);
        };
        if row.uploader != uploader || row.message.is_some() {
            return Ok(false);
        }
        if row.gone_at.is_none() {
            self.db.execute(
                "UPDATE uploads SET gone_at = ? WHERE id = ?",
                sql_params![now, id],
            )?;
        }
        Ok(true)
    }

    /// The uploads whose objects are to be deleted, up to `limit`: those released, and (released
    /// now, so no send can attach them while their objects are being deleted) those announced
    /// before `orphaned_before` and never attached.
    pub fn droppable_uploads(
        &self,
        orphaned_before: Millis,
        now: Millis,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.db.execute(
            "UPDATE uploads SET gone_at = ?
             WHERE message IS NULL AND gone_at IS NULL AND created_at < ?",
            sql_params![now, orphaned_before],
        )?;
        let rows = self.db.query(
            "SELECT id FROM uploads WHERE gone_at IS NOT NULL ORDER BY gone_at LIMIT ?",
            sql_params![limit],
        )?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// When the room should next delete objects: the oldest release if any are released (due
    /// already), else when the oldest unattached upload has waited `orphan_after`.
    pub fn next_upload_sweep(&self, orphan_after: Millis) -> Result<Option<Millis>, StoreError> {
        let rows = self.db.query(
            "SELECT (SELECT MIN(gone_at) FROM uploads WHERE gone_at IS NOT NULL),
                (SELECT MIN(created_at) FROM uploads WHERE message IS NULL AND gone_at IS NULL)",
            sql_params![],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(row
            .opt_int(0)?
            .or(row.opt_int(1)?.map(|at| at + orphan_after)))
    }

    /// Forgets uploads whose objects are deleted, and their bytes from the quota.
    pub fn forget_uploads(&self, ids: &[String]) -> Result<(), StoreError> {
        self.db.transaction(|| {
            for id in ids {
                let rows = self.db.query(
                    "DELETE FROM uploads WHERE id = ? AND gone_at IS NOT NULL RETURNING size",
                    sql_params![id.as_str()],
                )?;
                if let Some(row) = rows.first() {
                    self.add_upload_bytes(-(row.uint(0)? as i64))?;
                }
            }
            Ok(())
        })
    }

    /// Files attached to messages that stand, newest first: up to `limit` (more when the last
    /// message's files would be split), of `kind` if given, in messages before `before`.
    /// Returns the page and whether older files remain.
    pub fn files(
        &self,
        kind: Option<Kind>,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<(Vec<FileEntry>, bool), StoreError> {
        let kind = kind.map(kind_column).transpose()?;
        let rows = self.db.query(
            "SELECT u.attachment, u.thumb, u.message, m.at, m.author, m.thread
             FROM uploads u JOIN messages m ON m.seq = u.message
             WHERE u.message IS NOT NULL AND u.message < ?1 AND u.gone_at IS NULL
               AND u.attachment IS NOT NULL AND (?2 IS NULL OR u.kind = ?2) AND m.deleted = 0
             ORDER BY u.message DESC, u.position ASC
             LIMIT ?3",
            sql_params![
                before.unwrap_or(super::MAX_SAFE_INTEGER as u64),
                kind,
                limit + crate::limits::ATTACHMENTS_PER_MESSAGE as u32
            ],
        )?;
        let mut files = Vec::new();
        for row in &rows {
            let mut attachment: Attachment = row.json(0)?;
            attachment.thumb = row.int(1)? != 0;
            files.push(FileEntry {
                message: row.uint(2)?,
                at: row.int(3)?,
                author: row.json(4)?,
                thread: row.opt_uint(5)?,
                attachment,
            });
        }
        // Past `limit`, finish the last message's files and stop there: a page never splits
        // one message's files, so `before` (a message) is an exact cursor.
        let fetched = files.len();
        if fetched > limit as usize {
            let last = files[limit as usize - 1].message;
            let end = files[limit as usize..]
                .iter()
                .position(|f| f.message != last)
                .map_or(fetched, |p| p + limit as usize);
            files.truncate(end);
        }
        let more = files.len() < fetched
            || fetched == (limit as usize + crate::limits::ATTACHMENTS_PER_MESSAGE);
        Ok((files, more))
    }
}
