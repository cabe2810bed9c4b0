//! "Who's here" without the browser: how the panel writes counts, filters a small room's list,
//! and decides when a large room's slice is asked for again.
//!
//! A small room's client knows everyone present (the welcome lists them and each arrival and
//! departure is announced), so the panel filters that list itself. A large room only counts
//! them (`shared::room::presence`): the panel asks the room for the slice it shows, and since
//! arrivals are not announced, asks again when the count has moved enough or some time passed.

use shared::protocol::{Member, Millis};

/// People asked for at once (and per "Show more").
pub const PAGE: u32 = 50;
/// The most people the room returns in one slice (the protocol's limit on `presence`).
pub const SLICE_MAX: u32 = 100;
/// The longest search the room accepts (the protocol's limit on `presence.query`).
pub const QUERY_MAX_CHARS: usize = 64;
/// The search box waits this long after the last key before asking the room.
pub const SEARCH_DEBOUNCE_MS: u32 = 250;
/// An open panel asks for its slice again this often, so arrivals show up.
pub const REFRESH_MS: Millis = 30_000;

/// `4812` as "4,812".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whether the slice asked for when `asked_count` were present, at `asked_at`, is asked for
/// again now: the count moved by more than 5% (a count frame comes every second while people
/// arrive; asking on each would cost the room a slice a second per open panel), or
/// [`REFRESH_MS`] passed.
pub fn slice_is_stale(asked_count: usize, count: usize, asked_at: Millis, now: Millis) -> bool {
    now.saturating_sub(asked_at) >= REFRESH_MS || asked_count.abs_diff(count) * 20 > asked_count
}

/// How many to ask for when the slice shown is refreshed: as many as are shown (after "Show
/// more"), at least a page, at most what one slice holds.
pub fn refresh_limit(shown: usize) -> u32 {
    u32::try_from(shown)
        .unwrap_or(u32::MAX)
        .clamp(PAGE, SLICE_MAX)
}

/// What the search box asks for: trimmed, at most [`QUERY_MAX_CHARS`], none when empty.
pub fn query(typed: &str) -> Option<String> {
    let q: String = typed.trim().chars().take(QUERY_MAX_CHARS).collect();
    (!q.is_empty()).then_some(q)
}

/// A small room's people whose name contains `query` in any case, sorted by name: what the
/// room's slice of a large room holds.
pub fn matching<'a>(people: &'a [Member], query: Option<&str>) -> Vec<&'a Member> {
    let needle = query.map(str::to_lowercase);
    let mut found: Vec<(String, &Member)> = people
        .iter()
        .map(|m| (m.name.to_lowercase(), m))
        .filter(|(name, _)| needle.as_deref().is_none_or(|n| name.contains(n)))
        .collect();
    found.sort_by(|a, b| (&a.0, &a.1.user_id).cmp(&(&b.0, &b.1.user_id)));
    found.into_iter().map(|(_, m)| m).collect()
}

/// The line under the search box: "Showing 50 of 4,812", "Showing 3 of 3 matching “ann”",
/// "Nobody matching “zz”".
pub fn showing(shown: usize, total: usize, query: Option<&str>) -> String {
    let matching = query.map_or(String::new(), |q| format!(" matching “{q}”"));
    if total == 0 {
        let nobody = if query.is_some() {
            "Nobody"
        } else {
            "Nobody here"
        };
        return format!("{nobody}{matching}");
    }
    format!(
        "Showing {} of {}{matching}",
        thousands(shown),
        thousands(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, name: &str) -> Member {
        Member {
            user_id: id.into(),
            name: name.into(),
            avatar: None,
        }
    }

    #[test]
    fn counts_are_written_with_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(4_812), "4,812");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn a_slice_is_asked_again_when_the_count_moves_more_than_five_percent_or_after_30_s() {
        assert!(!slice_is_stale(1_000, 1_050, 0, 1_000), "5% is not more");
        assert!(slice_is_stale(1_000, 1_051, 0, 1_000));
        assert!(slice_is_stale(1_000, 949, 0, 1_000), "departures count too");
        assert!(!slice_is_stale(60, 62, 0, REFRESH_MS - 1));
        assert!(slice_is_stale(60, 60, 0, REFRESH_MS));
    }

    #[test]
    fn a_refresh_asks_for_what_is_shown_within_a_page_and_a_slice() {
        assert_eq!(refresh_limit(0), PAGE);
        assert_eq!(refresh_limit(73), 73);
        assert_eq!(refresh_limit(450), SLICE_MAX);
    }

    #[test]
    fn the_query_is_trimmed_bounded_and_absent_when_blank() {
        assert_eq!(query("  "), None);
        assert_eq!(query(" Ann ").as_deref(), Some("Ann"));
        assert_eq!(query(&"é".repeat(80)).map(|q| q.chars().count()), Some(64));
    }

    #[test]
    fn a_small_rooms_list_is_filtered_by_name_in_any_case_and_sorted_by_name() {
        let people = [
            member("3", "bob"),
            member("1", "Annabel"),
            member("2", "JOANNA"),
        ];
        let names = |q| -> Vec<&str> {
            matching(&people, q)
                .iter()
                .map(|m| m.name.as_str())
                .collect()
        };
        assert_eq!(names(None), ["Annabel", "bob", "JOANNA"]);
        assert_eq!(names(Some("ann")), ["Annabel", "JOANNA"]);
        assert!(names(Some("zz")).is_empty());
    }

    #[test]
    fn the_summary_says_how_many_are_shown_of_how_many() {
        assert_eq!(showing(50, 4_812, None), "Showing 50 of 4,812");
        assert_eq!(showing(3, 3, Some("ann")), "Showing 3 of 3 matching “ann”");
        assert_eq!(showing(0, 0, Some("zz")), "Nobody matching “zz”");
        assert_eq!(showing(0, 0, None), "Nobody here");
    }
}
