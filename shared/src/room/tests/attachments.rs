//! Files: announcing, storing, attaching, reading, listing, releasing, on real SQLite.

use super::*;
use crate::limits::{UploadLimits, UPLOAD_ORPHAN_MS};
use crate::media::Kind;
use crate::protocol::http::BeginUpload;
use crate::protocol::Label;
use crate::room::attachments::StoredFile;

/// A room where `owner` and `ann` are members; `eve` never joined.
fn files_room() -> (Fixture, Conn, Conn) {
    let (f, owner, ann, _moderator) = moderated();
    (f, owner, ann)
}

fn announce(upload_id: &str, size: u64) -> BeginUpload {
    BeginUpload {
        upload_id: upload_id.into(),
        name: format!("../{upload_id}.png"),
        size,
        width: Some(640),
        height: Some(480),
        duration_ms: None,
    }
}

/// A fresh 22-character id, different for every call.
fn id_maker() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("{n:0>22}")
    }
}

fn png(size: u64) -> StoredFile {
    StoredFile {
        mime: "image/png".into(),
        kind: Kind::Image,
        size,
        labels: vec![Label {
            name: "tabby cat".into(),
            score: 830,
        }],
        transcript: None,
    }
}

impl Fixture {
    /// Announces and stores a 100-byte PNG for `who`; returns its id.
    fn stored_upload(
        &mut self,
        who: &Conn,
        upload_id: &str,
        ids: &mut impl FnMut() -> String,
    ) -> String {
        self.now += 1;
        let ticket = self
            .room
            .begin_upload(
                &who.author.id,
                false,
                &announce(upload_id, 100),
                &UploadLimits {
                    uploads_per_minute: 10_000,
                    ..UploadLimits::default()
                },
                self.now,
                &mut *ids,
            )
            .expect("announced");
        self.room
            .upload_stored(&who.author.id, &ticket.id, png(100))
            .expect("stored");
        ticket.id
    }

    fn send_files(&mut self, who: &Conn, client_id: &str, text: &str, ids: &[&str]) -> Vec<Effect> {
        self.frame(
            who,
            serde_json::json!({"type":"send","client_id":client_id,"text":text,"attachments":ids}),
        )
    }
}

fn error_code(result: Result<impl std::fmt::Debug, Failure>) -> ErrorCode {
    result.expect_err("refused").into_error().0.code
}

#[test]
fn a_stored_upload_sent_with_a_message_reaches_everyone_with_its_facts() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let id = f.stored_upload(&ann, "u1", &mut ids);
    let effects = f.send_files(&ann, "m1", "", &[&id]);
    let event = effects
        .iter()
        .find_map(|e| match e {
            Effect::Broadcast(ServerMessage::Event { event }) => Some(event.clone()),
            _ => None,
        })
        .expect("broadcast");
    let EventKind::Message { text, attachments } = event.kind else {
        panic!("a message event")
    };
    assert_eq!(text, "", "a message may be only files");
    assert_eq!(attachments.len(), 1);
    let file = &attachments[0];
    assert_eq!(file.id, id);
    assert_eq!(file.name, "u1.png", "the name is sanitized: no path");
    assert_eq!((file.width, file.height), (Some(640), Some(480)));
    assert_eq!(file.labels[0].name, "tabby cat");
    let page = f.room.store().message(event.seq).unwrap().unwrap();
    assert_eq!(page.attachments, attachments, "pages carry the same files");
}

#[test]
fn a_send_naming_someone_elses_upload_an_unstored_one_or_a_malformed_id_is_refused() {
    let (mut f, owner, ann) = files_room();
    let mut ids = id_maker();
    let anns = f.stored_upload(&ann, "u1", &mut ids);
    assert_eq!(
        error_of(&f.send_files(&owner, "m1", "mine now", &[&anns])),
        ErrorCode::NotFound
    );
    let waiting = f
        .room
        .begin_upload(
            "ann",
            false,
            &announce("u2", 10),
            &UploadLimits::default(),
            f.now,
            &mut ids,
        )
        .unwrap();
    assert_eq!(
        error_of(&f.send_files(&ann, "m2", "too soon", &[&waiting.id])),
        ErrorCode::Conflict,
        "a file still uploading cannot be sent"
    );
    assert_eq!(
        error_of(&f.send_files(&ann, "m3", "x", &["../../etc/passwd"])),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        error_of(&f.send_files(&ann, "m4", "twice", &[&anns, &anns])),
        ErrorCode::InvalidInput
    );
}

#[test]
fn a_file_belongs_to_one_message_and_a_resend_of_that_message_is_acknowledged_again() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let id = f.stored_upload(&ann, "u1", &mut ids);
    let (seq, duplicate) = ack_of(&f.send_files(&ann, "m1", "look", &[&id]));
    assert!(!duplicate);
    let (again, duplicate) = ack_of(&f.send_files(&ann, "m1", "look", &[&id]));
    assert_eq!(
        (again, duplicate),
        (seq, true),
        "the resend is the same message"
    );
    assert_eq!(
        error_of(&f.send_files(&ann, "m2", "again", &[&id])),
        ErrorCode::Conflict,
        "another message cannot take the same file"
    );
}

#[test]
fn announcing_again_with_the_same_upload_id_returns_the_same_ticket_and_the_stored_file() {
    let (mut f, _owner, _ann) = files_room();
    let mut ids = id_maker();
    let limits = UploadLimits::default();
    let first = f
        .room
        .begin_upload("ann", false, &announce("u1", 100), &limits, 1, &mut ids)
        .unwrap();
    let retry = f
        .room
        .begin_upload("ann", false, &announce("u1", 100), &limits, 2, &mut ids)
        .unwrap();
    assert_eq!(retry.id, first.id, "a retry never makes a second object");
    assert!(retry.stored.is_none());
    f.room.upload_stored("ann", &first.id, png(100)).unwrap();
    let after = f
        .room
        .begin_upload("ann", false, &announce("u1", 100), &limits, 3, &mut ids)
        .unwrap();
    assert_eq!(
        after.stored.map(|a| a.id),
        Some(first.id),
        "stored: skip the bytes"
    );
    assert_eq!(f.room.store().upload_bytes().unwrap(), 100, "counted once");
}

#[test]
fn the_size_limit_the_room_quota_and_the_upload_rate_each_refuse_with_their_code() {
    let (mut f, _owner, _ann) = files_room();
    let mut ids = id_maker();
    let limits = UploadLimits {
        file_max_bytes: 1_000,
        room_quota_bytes: 2_500,
        uploads_per_minute: 4,
    };
    let mut begin = |f: &mut Fixture, id: &str, size: u64, now: Millis| {
        f.room
            .begin_upload("ann", false, &announce(id, size), &limits, now, &mut ids)
            .map(|t| t.id)
    };
    let too_big = begin(&mut f, "big", 1_001, 0).unwrap_err().into_error().0;
    assert_eq!(too_big.code, ErrorCode::TooLarge);
    assert!(
        too_big.message.contains("1000 bytes"),
        "{}",
        too_big.message
    );
    begin(&mut f, "a", 1_000, 0).unwrap();
    begin(&mut f, "b", 1_000, 0).unwrap();
    assert_eq!(
        error_code(begin(&mut f, "c", 1_000, 0)),
        ErrorCode::QuotaExceeded
    );
    begin(&mut f, "d", 100, 0).unwrap();
    begin(&mut f, "e", 100, 0).unwrap();
    assert_eq!(
        error_code(begin(&mut f, "f", 100, 1)),
        ErrorCode::RateLimited,
        "four a minute"
    );
    assert!(begin(&mut f, "g", 100, 60_001).is_ok(), "a minute later");
}

#[test]
fn only_members_who_may_post_upload_and_only_unbanned_members_read() {
    let (mut f, owner, ann) = files_room();
    let mut ids = id_maker();
    let limits = UploadLimits::default();
    assert_eq!(
        error_code(
            f.room
                .begin_upload("eve", false, &announce("u", 10), &limits, 1, &mut ids)
        ),
        ErrorCode::Forbidden,
        "a stranger cannot upload"
    );
    let id = f.stored_upload(&ann, "u1", &mut ids);
    ack_of(&f.send_files(&ann, "m1", "for the room", &[&id]));
    assert!(f.room.file("owner", false, &id).is_ok());
    assert_eq!(
        error_code(f.room.file("eve", false, &id)),
        ErrorCode::NotFound,
        "a non-member"
    );
    assert!(f.room.file("eve", true, &id).is_ok(), "a global admin");
    f.command(
        &owner,
        Command::Ban {
            user_id: "ann".into(),
        },
    )
    .unwrap();
    assert_eq!(
        error_code(f.room.file("ann", false, &id)),
        ErrorCode::NotFound,
        "a banned member, even the uploader"
    );
    assert_eq!(
        error_code(f.room.file("owner", false, "AAAAAAAAAAAAAAAAAAAAAA")),
        ErrorCode::NotFound,
        "a guessed id"
    );
}

#[test]
fn an_unsent_upload_is_readable_by_its_uploader_only() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let id = f.stored_upload(&ann, "u1", &mut ids);
    assert!(
        f.room.file("ann", false, &id).is_ok(),
        "the sender's preview"
    );
    assert_eq!(
        error_code(f.room.file("owner", false, &id)),
        ErrorCode::NotFound
    );
}

#[test]
fn deleting_the_message_releases_its_files_and_the_sweep_forgets_them_once_deleted() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let id = f.stored_upload(&ann, "u1", &mut ids);
    let (seq, _) = ack_of(&f.send_files(&ann, "m1", "oops", &[&id]));
    assert_eq!(f.room.next_file_sweep().unwrap(), None, "nothing waits");
    let effects = f.frame(
        &ann,
        serde_json::json!({"type":"delete","client_id":"d1","target":seq}),
    );
    assert!(
        effects.iter().any(|e| matches!(e, Effect::FilesReleased)),
        "delete now"
    );
    assert_eq!(
        error_code(f.room.file("ann", false, &id)),
        ErrorCode::NotFound
    );
    let message = f.room.store().message(seq).unwrap().unwrap();
    assert!(message.attachments.is_empty(), "the tombstone has no files");
    let replay = replayed(&mut f, &ann, 0);
    assert!(
        replay.iter().all(|e| !matches!(&e.kind, EventKind::Message { attachments, .. } if !attachments.is_empty())),
        "the posting event no longer names the file"
    );
    let due = f.room.next_file_sweep().unwrap().expect("a sweep is due");
    assert!(due <= f.now, "due at once");
    let drop = f.room.droppable_files(f.now).unwrap();
    assert_eq!(drop, vec![id.clone()]);
    f.room.forget_files(&drop).unwrap();
    assert!(f.room.store().upload(&id).unwrap().is_none());
    assert_eq!(
        f.room.store().upload_bytes().unwrap(),
        0,
        "the quota is freed"
    );
}

#[test]
fn an_upload_never_sent_is_swept_after_a_day_and_cannot_be_sent_once_released() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let id = f.stored_upload(&ann, "u1", &mut ids);
    let announced = f.now;
    assert_eq!(
        f.room.next_file_sweep().unwrap(),
        Some(announced + UPLOAD_ORPHAN_MS)
    );
    assert!(f
        .room
        .droppable_files(announced + UPLOAD_ORPHAN_MS - 1)
        .unwrap()
        .is_empty());
    let drop = f
        .room
        .droppable_files(announced + UPLOAD_ORPHAN_MS + 1)
        .unwrap();
    assert_eq!(drop, vec![id.clone()]);
    assert_eq!(
        error_of(&f.send_files(&ann, "late", "now?", &[&id])),
        ErrorCode::NotFound,
        "a released upload can no longer be attached (its object is being deleted)"
    );
}

#[test]
fn cancelling_releases_an_unsent_upload_and_only_its_uploader_may() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let id = f.stored_upload(&ann, "u1", &mut ids);
    assert_eq!(
        error_code(f.room.cancel_upload("owner", &id, 5)),
        ErrorCode::NotFound
    );
    f.room.cancel_upload("ann", &id, 5).unwrap();
    assert_eq!(f.room.droppable_files(6).unwrap(), vec![id]);
}

#[test]
fn the_stored_size_must_be_the_announced_size() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let ticket = f
        .room
        .begin_upload(
            &ann.author.id,
            false,
            &announce("u1", 100),
            &UploadLimits::default(),
            1,
            &mut ids,
        )
        .unwrap();
    assert_eq!(
        error_code(f.room.upload_stored("ann", &ticket.id, png(99))),
        ErrorCode::InvalidInput
    );
    assert_eq!(
        error_code(f.room.upload_stored("owner", &ticket.id, png(100))),
        ErrorCode::NotFound,
        "only the uploader stores"
    );
}

#[test]
fn the_files_list_is_newest_first_filters_by_kind_and_pages_without_splitting_a_message() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let mut posted = Vec::new();
    for m in 0..60 {
        let a = f.stored_upload(&ann, &format!("a{m}"), &mut ids);
        let b = f.stored_upload(&ann, &format!("b{m}"), &mut ids);
        let (seq, _) = ack_of(&f.send_files(&ann, &format!("m{m}"), "two", &[&a, &b]));
        posted.push(seq);
    }
    let first = f.room.files("ann", false, None, None).unwrap();
    assert_eq!(
        first.files[0].message,
        *posted.last().unwrap(),
        "newest first"
    );
    assert_eq!(first.files.len() % 2, 0, "a message's files stay together");
    let next = first.next.expect("more pages");
    let second = f.room.files("ann", false, None, Some(next)).unwrap();
    let mut seen: Vec<Seq> = first
        .files
        .iter()
        .chain(&second.files)
        .map(|e| e.message)
        .collect();
    let third = second
        .next
        .map(|n| f.room.files("ann", false, None, Some(n)).unwrap());
    seen.extend(third.iter().flat_map(|p| p.files.iter().map(|e| e.message)));
    seen.dedup();
    assert_eq!(seen.len(), 60, "every message once");
    let videos = f.room.files("ann", false, Some(Kind::Video), None).unwrap();
    assert!(videos.files.is_empty() && videos.next.is_none());
    assert_eq!(
        error_code(f.room.files("eve", false, None, None)),
        ErrorCode::NotFound
    );
}

#[test]
fn search_finds_messages_by_attached_image_and_by_label_words() {
    let (mut f, _owner, ann) = files_room();
    let mut ids = id_maker();
    let id = f.stored_upload(&ann, "u1", &mut ids);
    let (with_image, _) = ack_of(&f.send_files(&ann, "m1", "our cat", &[&id]));
    let (plain, _) = ack_of(&f.send(&ann, "m2", "no picture of the cat"));
    let search = |f: &Fixture, q: &str| -> Vec<Seq> {
        let query = crate::search::parse_query(q).unwrap();
        f.room
            .store()
            .search("general", &query, 10, 100)
            .unwrap()
            .into_iter()
            .map(|h| h.seq)
            .collect()
    };
    assert_eq!(search(&f, "has:image"), vec![with_image]);
    assert_eq!(search(&f, "has:file cat"), vec![with_image]);
    assert_eq!(
        search(&f, "tag:cat"),
        vec![with_image],
        "a whole word of `tabby cat`"
    );
    assert_eq!(search(&f, "tag:\"Tabby Cat\""), vec![with_image]);
    assert!(search(&f, "tag:ca").is_empty(), "whole words only");
    let mut both = search(&f, "cat");
    both.sort_unstable();
    assert_eq!(both, vec![with_image, plain]);
}
