//! The room's "Files" list, the pure parts: its filters and the paging of a filter that spans
//! several kinds. The Worker lists one kind (or all) per request, newest first, a page at a
//! time; "Documents" is PDFs and text files and "Other" archives and other files, so those
//! filters read one list per kind and merge them. A merged list may only show what no list
//! still to be read could come before: an entry is shown once every unfinished list has paged
//! past it.

use shared::media::Kind;
use shared::protocol::http::{FileEntry, FileList};
use shared::protocol::Seq;

/// A filter of the Files panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Every file.
    All,
    /// Images.
    Images,
    /// Videos.
    Videos,
    /// Audio.
    Audio,
    /// PDFs and text files.
    Documents,
    /// Archives and anything else.
    Other,
}

impl Filter {
    /// Every filter, in the order the panel offers them.
    pub const ALL: [Filter; 6] = [
        Filter::All,
        Filter::Images,
        Filter::Videos,
        Filter::Audio,
        Filter::Documents,
        Filter::Other,
    ];

    /// Its button's label.
    pub fn label(self) -> &'static str {
        match self {
            Filter::All => "All",
            Filter::Images => "Images",
            Filter::Videos => "Videos",
            Filter::Audio => "Audio",
            Filter::Documents => "Documents",
            Filter::Other => "Other",
        }
    }

    /// The `kind=` of each list it reads (`None`: every kind, one list).
    pub fn kinds(self) -> &'static [Option<Kind>] {
        match self {
            Filter::All => &[None],
            Filter::Images => &[Some(Kind::Image)],
            Filter::Videos => &[Some(Kind::Video)],
            Filter::Audio => &[Some(Kind::Audio)],
            Filter::Documents => &[Some(Kind::Pdf), Some(Kind::Text)],
            Filter::Other => &[Some(Kind::Archive), Some(Kind::File)],
        }
    }
}

/// A kind as the `kind=` query names it (its wire name).
pub fn kind_param(kind: Kind) -> &'static str {
    match kind {
        Kind::Image => "image",
        Kind::Video => "video",
        Kind::Audio => "audio",
        Kind::Pdf => "pdf",
        Kind::Text => "text",
        Kind::Archive => "archive",
        Kind::File => "file",
    }
}

/// One list being paged.
#[derive(Debug, Clone, Default)]
struct Lane {
    entries: Vec<FileEntry>,
    /// `before` for its next page; `None` once its last page is in.
    next: Option<Seq>,
    /// A first page has arrived.
    started: bool,
}

impl Lane {
    fn finished(&self) -> bool {
        self.started && self.next.is_none()
    }
}

/// The pages read so far of one filter.
#[derive(Debug, Clone)]
pub struct Pages {
    filter: Filter,
    lanes: Vec<Lane>,
}

impl Pages {
    /// Nothing read yet.
    pub fn new(filter: Filter) -> Self {
        Pages {
            filter,
            lanes: vec![Lane::default(); filter.kinds().len()],
        }
    }

    /// The filter these pages are of.
    pub fn filter(&self) -> Filter {
        self.filter
    }

    /// The requests to make next: for each list not finished, its kind and `before`.
    pub fn wanted(&self) -> Vec<(usize, Option<Kind>, Option<Seq>)> {
        self.lanes
            .iter()
            .enumerate()
            .filter(|(_, lane)| !lane.finished())
            .map(|(i, lane)| (i, self.filter.kinds()[i], lane.next))
            .collect()
    }

    /// A page of list `lane` arrived (a stale one, for a list already past it, is ignored).
    pub fn add(&mut self, lane: usize, before: Option<Seq>, page: FileList) {
        let Some(l) = self.lanes.get_mut(lane) else {
            return;
        };
        if l.next != before || l.finished() {
            return;
        }
        l.entries.extend(page.files);
        l.next = page.next;
        l.started = true;
    }

    /// Whether any list has more pages ("Load more").
    pub fn more(&self) -> bool {
        self.lanes.iter().any(|l| !l.finished())
    }

    /// Whether every list has its first page (until then the panel says it is loading).
    pub fn started(&self) -> bool {
        self.lanes.iter().all(|l| l.started)
    }

    /// The entries that can be shown, newest first: those of every list at or after the point
    /// the least advanced unfinished list has reached (an older entry might still be preceded
    /// by one of that list's next page).
    pub fn shown(&self) -> Vec<&FileEntry> {
        if !self.started() {
            return Vec::new();
        }
        let boundary = self.lanes.iter().filter_map(|l| l.next).max();
        // Each list is newest first: merge them, taking the newest head each time (ties go to
        // the earlier list, and the files of one message keep their order). A merge, not a
        // sort: a sort's code would be one more thing in the app's download.
        let mut at = vec![0; self.lanes.len()];
        let mut all = Vec::new();
        loop {
            let next = self
                .lanes
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.entries.get(at[i]).map(|e| (i, e)))
                .filter(|(_, e)| boundary.is_none_or(|b| e.message >= b))
                .fold(None::<(usize, &FileEntry)>, |best, (i, e)| match best {
                    Some((_, b)) if b.message >= e.message => best,
                    _ => Some((i, e)),
                });
            let Some((i, e)) = next else {
                return all;
            };
            at[i] += 1;
            all.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::protocol::{Attachment, Author, Role};

    fn entry(message: Seq, kind: Kind, name: &str) -> FileEntry {
        FileEntry {
            message,
            thread: None,
            at: message as i64 * 1000,
            author: Author {
                id: "u".into(),
                name: "Ann".into(),
                role: Role::Member,
            },
            attachment: Attachment {
                id: format!("{name:_<22}"),
                name: name.into(),
                size: 10,
                mime: "application/pdf".into(),
                kind,
                width: None,
                height: None,
                duration_ms: None,
                thumb: false,
                labels: Vec::new(),
                transcript: None,
            },
        }
    }

    fn names(pages: &Pages) -> Vec<&str> {
        pages
            .shown()
            .iter()
            .map(|e| e.attachment.name.as_str())
            .collect()
    }

    #[test]
    fn documents_and_other_read_two_kinds_and_the_rest_one() {
        assert_eq!(Filter::All.kinds(), &[None]);
        assert_eq!(Filter::Images.kinds(), &[Some(Kind::Image)]);
        assert_eq!(
            Filter::Documents.kinds(),
            &[Some(Kind::Pdf), Some(Kind::Text)]
        );
        assert_eq!(
            Filter::Other.kinds(),
            &[Some(Kind::Archive), Some(Kind::File)]
        );
        assert_eq!(kind_param(Kind::Pdf), "pdf");
    }

    #[test]
    fn one_list_shows_each_page_as_it_arrives_and_load_more_asks_before_the_last() {
        let mut pages = Pages::new(Filter::All);
        assert_eq!(pages.wanted(), vec![(0, None, None)]);
        assert!(pages.shown().is_empty(), "nothing before the first page");
        pages.add(
            0,
            None,
            FileList {
                files: vec![entry(9, Kind::Image, "a"), entry(7, Kind::Pdf, "b")],
                next: Some(7),
            },
        );
        assert_eq!(names(&pages), ["a", "b"]);
        assert!(pages.more());
        assert_eq!(pages.wanted(), vec![(0, None, Some(7))]);
        pages.add(
            0,
            Some(7),
            FileList {
                files: vec![entry(3, Kind::Text, "c")],
                next: None,
            },
        );
        assert_eq!(names(&pages), ["a", "b", "c"]);
        assert!(!pages.more());
        assert!(pages.wanted().is_empty());
    }

    #[test]
    fn a_merged_filter_never_shows_an_entry_that_an_unread_page_could_come_before() {
        let mut pages = Pages::new(Filter::Documents);
        pages.add(
            0,
            None,
            FileList {
                files: vec![entry(50, Kind::Pdf, "p50"), entry(40, Kind::Pdf, "p40")],
                next: Some(40),
            },
        );
        assert!(pages.shown().is_empty(), "the text list has not answered");
        pages.add(
            1,
            None,
            FileList {
                files: vec![entry(45, Kind::Text, "t45"), entry(10, Kind::Text, "t10")],
                next: None,
            },
        );
        // t10 waits: the PDFs between 40 and 10 are not read yet.
        assert_eq!(names(&pages), ["p50", "t45", "p40"]);
        assert_eq!(pages.wanted(), vec![(0, Some(Kind::Pdf), Some(40))]);
        pages.add(
            0,
            Some(40),
            FileList {
                files: vec![entry(20, Kind::Pdf, "p20")],
                next: None,
            },
        );
        assert_eq!(names(&pages), ["p50", "t45", "p40", "p20", "t10"]);
        assert!(!pages.more());
    }

    #[test]
    fn a_stale_or_repeated_page_is_ignored() {
        let mut pages = Pages::new(Filter::Images);
        let first = FileList {
            files: vec![entry(5, Kind::Image, "x")],
            next: Some(5),
        };
        pages.add(0, None, first.clone());
        pages.add(0, None, first);
        assert_eq!(names(&pages), ["x"]);
        let empty = FileList {
            files: Vec::new(),
            next: None,
        };
        pages.add(3, None, empty);
        assert_eq!(names(&pages), ["x"]);
    }
}
