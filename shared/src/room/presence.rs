//! Who is in the room, kept so that a join costs the same with 5 people present as with 5,000.
//!
//! A small room announces every arrival and departure to everyone, as it always did. Past
//! [`LARGE_ROOM`] people present that is quadratic (every join is told to everyone already
//! there), so a large room sends the number present instead, coalesced to one frame per wait
//! that grows with the room ([`COUNT_MS_PER_PERSON`]), and a client that shows a member list asks for the slice it displays
//! ([`Presence::slice`], paged and searchable) and from then on hears about the people in that
//! slice only. Typing is bounded the same way: in a large room only the few most recent typists
//! are told to the room.
//!
//! The room starts counting when more than [`LARGE_ROOM`] are present and goes back to
//! announcing people only when [`LARGE_ROOM`] / 2 or fewer remain (so a room hovering at the
//! threshold does not flap), telling everyone the exact count as it goes back. A client that
//! was welcomed with a count keeps counting from the arrivals and departures it then hears.
//!
//! The Durable Object owns one `Presence` beside its socket table and rebuilds both from the
//! sockets' attachments when it wakes; nothing here touches storage.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use crate::protocol::{Member, Millis, ServerMessage};

/// People present above which the room counts them instead of announcing each one.
pub const LARGE_ROOM: usize = 50;
/// The least time between two count frames.
pub const COUNT_EVERY_MS: Millis = 1_000;
/// How much longer the wait between count frames grows per person present: a count that must
/// be exact to the person matters less the more people there are, and waiting in proportion to
/// the room's size keeps the frames each socket gets while a crowd pours in constant (N joins
/// at any rate span N / rate seconds, over which a count goes out every N × this). A 5,000-person
/// room tells its count every 50 s while it changes.
pub const COUNT_MS_PER_PERSON: Millis = 10;
/// The longest wait between count frames while the count changes.
pub const COUNT_EVERY_MAX_MS: Millis = 60_000;
/// The most people one slice of the member list holds.
pub const SLICE_MAX: usize = 100;
/// In a large room, how many different people's typing is told to the room per window.
pub const TYPISTS_SHOWN: usize = 3;
/// The typing window: a typist is told at most once per window, and at most
/// [`TYPISTS_SHOWN`] typists are told per window in a large room.
pub const TYPING_WINDOW_MS: Millis = 3_000;

/// What the welcome says about who is here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Present {
    /// Everyone present (a small room).
    Everyone(Vec<Member>),
    /// How many are present (a large room); the list comes in slices on request.
    Count(u32),
}

impl From<Vec<Member>> for Present {
    fn from(members: Vec<Member>) -> Present {
        Present::of(members)
    }
}

impl Present {
    /// The welcome's view of these members: all of them, or their number past [`LARGE_ROOM`].
    pub fn of(members: Vec<Member>) -> Present {
        if members.len() > LARGE_ROOM {
            Present::Count(members.len() as u32)
        } else {
            Present::Everyone(members)
        }
    }
}

/// Where a presence frame goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// To every joined socket but `except`.
    Everyone {
        /// The frame.
        frame: ServerMessage,
        /// The socket that caused it (it knows).
        except: Option<u64>,
    },
    /// To these sockets (those whose displayed slice holds the person).
    Sockets(Vec<u64>, ServerMessage),
}

#[derive(Debug, Clone)]
struct Person {
    member: Member,
    sockets: u32,
}

/// The room's present people, their sockets, and who watches which slice.
#[derive(Debug, Default)]
pub struct Presence {
    people: HashMap<String, Person>,
    /// Present people sorted by lowercased name then id: slices are ranges of it.
    sorted: BTreeSet<(String, String)>,
    /// Which person each socket belongs to.
    sockets: HashMap<u64, String>,
    /// Socket → the people in the slice it displays; and person → the sockets displaying them.
    slices: HashMap<u64, Vec<String>>,
    watchers: HashMap<String, HashSet<u64>>,
    /// The count the room was last told and when; and whether a newer one is waiting.
    told_count: Option<u32>,
    told_at: Option<Millis>,
    count_pending: bool,
    /// Typists told in the current window, oldest first, with when.
    typists: VecDeque<(String, Millis)>,
    /// The room counts people instead of announcing them.
    counting: bool,
}

fn sort_key(member: &Member) -> (String, String) {
    (member.name.to_lowercase(), member.user_id.clone())
}

impl Presence {
    /// An empty room.
    pub fn new() -> Self {
        Presence::default()
    }

    /// How many people are present (not sockets: a person with three tabs is one).
    pub fn count(&self) -> usize {
        self.people.len()
    }

    /// Whether the room counts people instead of announcing them.
    pub fn is_large(&self) -> bool {
        self.counting
    }

    /// Whether this person has a joined socket.
    pub fn contains(&self, user_id: &str) -> bool {
        self.people.contains_key(user_id)
    }

    /// What the welcome of `user_id`, who is joining, says about who is here: in a large room
    /// the count with them in it (their join is counted after the welcome is built).
    pub fn welcome_for(&self, user_id: &str) -> Present {
        match self.welcome() {
            Present::Count(count) if !self.contains(user_id) => Present::Count(count + 1),
            present => present,
        }
    }

    /// What a welcome says about who is here.
    pub fn welcome(&self) -> Present {
        if self.is_large() {
            Present::Count(self.people.len() as u32)
        } else {
            let mut members: Vec<Member> = self.people.values().map(|p| p.member.clone()).collect();
            members.sort_by_key(sort_key);
            Present::Everyone(members)
        }
    }

    /// Socket `socket` of `member` joined. Their first socket makes them present: in a small
    /// room everyone else hears it; in a large room the count moves (see [`Presence::tick`]).
    pub fn join(&mut self, socket: u64, member: Member, now: Millis) -> Vec<Notice> {
        if self.sockets.contains_key(&socket) {
            return Vec::new();
        }
        self.sockets.insert(socket, member.user_id.clone());
        if let Some(person) = self.people.get_mut(&member.user_id) {
            person.sockets += 1;
            return Vec::new();
        }
        self.sorted.insert(sort_key(&member));
        let id = member.user_id.clone();
        self.people.insert(
            id,
            Person {
                member: member.clone(),
                sockets: 1,
            },
        );
        if !self.counting && self.people.len() > LARGE_ROOM {
            // It just became large: from now on clients keep a count, not a list.
            self.counting = true;
        }
        if self.counting {
            // Not to the joining socket: its welcome already counted it, and this frame would
            // reach it before that welcome.
            return self.count_changed(now, Some(socket));
        }
        vec![Notice::Everyone {
            frame: ServerMessage::PresenceJoin { member },
            except: Some(socket),
        }]
    }

    /// Socket `socket` closed. Their last socket makes them absent: in a small room everyone
    /// hears it; in a large room the sockets displaying them do, and the count moves.
    pub fn leave(&mut self, socket: u64, now: Millis) -> Vec<Notice> {
        self.unwatch(socket);
        let Some(user_id) = self.sockets.remove(&socket) else {
            return Vec::new();
        };
        let Some(person) = self.people.get_mut(&user_id) else {
            return Vec::new();
        };
        person.sockets -= 1;
        if person.sockets > 0 {
            return Vec::new();
        }
        if let Some(person) = self.people.remove(&user_id) {
            self.sorted.remove(&sort_key(&person.member));
        }
        let frame = ServerMessage::PresenceLeave {
            user_id: user_id.clone(),
        };
        if !self.counting {
            return vec![Notice::Everyone {
                frame,
                except: None,
            }];
        }
        let mut notices = Vec::new();
        if let Some(watching) = self.watchers.remove(&user_id) {
            let mut sockets: Vec<u64> = watching.into_iter().collect();
            sockets.sort_unstable();
            notices.push(Notice::Sockets(sockets, frame));
        }
        if self.people.len() <= LARGE_ROOM / 2 {
            // Small again: the exact count now, then arrivals and departures one by one.
            self.counting = false;
            self.count_pending = false;
            let count = self.people.len() as u32;
            self.told_count = Some(count);
            self.told_at = Some(now);
            notices.push(Notice::Everyone {
                frame: ServerMessage::PresenceCount { count },
                except: None,
            });
            return notices;
        }
        notices.extend(self.count_changed(now, None));
        notices
    }

    /// Someone's name or avatar changed: the stored member (for later welcomes and slices).
    pub fn renamed(&mut self, member: &Member) {
        if let Some(person) = self.people.get_mut(&member.user_id) {
            self.sorted.remove(&sort_key(&person.member));
            person.member = member.clone();
            self.sorted.insert(sort_key(member));
        }
    }

    fn count_changed(&mut self, now: Millis, except: Option<u64>) -> Vec<Notice> {
        self.count_pending = true;
        self.tick_except(now, except)
    }

    /// The count frame that is due at `now`, if the count changed since the room was last
    /// told and the wait has passed: [`COUNT_EVERY_MS`], or [`COUNT_MS_PER_PERSON`] for each
    /// person present, whichever is longer (at most [`COUNT_EVERY_MAX_MS`]).
    pub fn tick(&mut self, now: Millis) -> Vec<Notice> {
        self.tick_except(now, None)
    }

    fn tick_except(&mut self, now: Millis, except: Option<u64>) -> Vec<Notice> {
        if !self.count_pending || self.deadline().is_some_and(|at| now < at) {
            return Vec::new();
        }
        self.count_pending = false;
        let count = self.people.len() as u32;
        if self.told_count == Some(count) {
            return Vec::new();
        }
        self.told_count = Some(count);
        self.told_at = Some(now);
        vec![Notice::Everyone {
            frame: ServerMessage::PresenceCount { count },
            except,
        }]
    }

    /// When the next count frame may go out, if one is waiting.
    pub fn deadline(&self) -> Option<Millis> {
        if !self.count_pending {
            return None;
        }
        let wait = (self.people.len() as Millis * COUNT_MS_PER_PERSON)
            .clamp(COUNT_EVERY_MS, COUNT_EVERY_MAX_MS);
        Some(self.told_at.map_or(Millis::MIN, |at| at + wait))
    }

    /// The slice of present people socket `socket` displays: those whose name contains
    /// `query` (any case), sorted by name, from `offset`, at most `limit` (and
    /// [`SLICE_MAX`]); and how many match. The socket then hears when one of them leaves
    /// (an arrival moves the count; a client refreshes its slice when the count changes).
    pub fn slice(
        &mut self,
        socket: u64,
        offset: usize,
        limit: usize,
        query: Option<&str>,
    ) -> (Vec<Member>, u32) {
        self.unwatch(socket);
        let needle = query.map(str::to_lowercase).filter(|q| !q.is_empty());
        let matching = self
            .sorted
            .iter()
            .filter(|(name, _)| needle.as_ref().is_none_or(|n| name.contains(n.as_str())));
        let mut total = 0u32;
        let mut members = Vec::new();
        for (i, (_, id)) in matching.enumerate() {
            total += 1;
            if i >= offset && members.len() < limit.min(SLICE_MAX) {
                if let Some(person) = self.people.get(id) {
                    members.push(person.member.clone());
                }
            }
        }
        let ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
        for id in &ids {
            self.watchers.entry(id.clone()).or_default().insert(socket);
        }
        self.slices.insert(socket, ids);
        (members, total)
    }

    fn unwatch(&mut self, socket: u64) {
        for id in self.slices.remove(&socket).unwrap_or_default() {
            if let Some(watching) = self.watchers.get_mut(&id) {
                watching.remove(&socket);
                if watching.is_empty() {
                    self.watchers.remove(&id);
                }
            }
        }
    }

    /// Whether `user_id`'s typing notice goes to the room at `now`: at most once per
    /// [`TYPING_WINDOW_MS`] per person, and in a large room only for the first
    /// [`TYPISTS_SHOWN`] people typing in that window.
    pub fn typing(&mut self, user_id: &str, now: Millis) -> bool {
        while self
            .typists
            .front()
            .is_some_and(|(_, at)| now - at >= TYPING_WINDOW_MS)
        {
            self.typists.pop_front();
        }
        if self.typists.iter().any(|(id, _)| id == user_id) {
            return false;
        }
        if self.is_large() && self.typists.len() >= TYPISTS_SHOWN {
            return false;
        }
        self.typists.push_back((user_id.to_owned(), now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: usize) -> Member {
        Member {
            user_id: format!("u{i:04}"),
            name: format!("Person {i:04}"),
            avatar: None,
        }
    }

    fn frames_to_everyone(notices: &[Notice]) -> usize {
        notices
            .iter()
            .filter(|n| matches!(n, Notice::Everyone { .. }))
            .count()
    }

    #[test]
    fn a_small_room_announces_each_arrival_and_departure_to_everyone() {
        let mut p = Presence::new();
        let joined = p.join(1, member(1), 0);
        assert_eq!(
            joined,
            vec![Notice::Everyone {
                frame: ServerMessage::PresenceJoin { member: member(1) },
                except: Some(1)
            }]
        );
        assert!(
            p.join(2, member(1), 0).is_empty(),
            "a second tab is not news"
        );
        assert!(p.leave(1, 0).is_empty(), "one tab left, still here");
        assert_eq!(frames_to_everyone(&p.leave(2, 0)), 1);
        assert_eq!(p.count(), 0);
        assert_eq!(p.welcome(), Present::Everyone(vec![]));
    }

    #[test]
    fn a_large_room_sends_counts_not_per_person_presence_and_few_of_them_however_many_join() {
        // N people join at 30 a second (what the crowd bench measures): the frames told to
        // everyone stay a few dozen whether 1,000 or 5,000 come, where announcing each would
        // be N, and one count a second would be N / 30.
        for n in [1_000usize, 5_000] {
            let mut p = Presence::new();
            let mut everyone = 0;
            let mut counts = Vec::new();
            let mut now = 0;
            for i in 0..n {
                now = (i as Millis) * 1_000 / 30;
                let notices = p.join(i as u64, member(i), now);
                for notice in notices.into_iter().chain(p.tick(now)) {
                    if let Notice::Everyone { frame, .. } = notice {
                        everyone += 1;
                        if let ServerMessage::PresenceCount { count } = frame {
                            counts.push(count);
                        }
                    }
                }
            }
            assert!(
                everyone <= LARGE_ROOM + 20,
                "{n}: {everyone} frames to everyone"
            );
            assert!(counts.len() <= 20, "{n}: {counts:?}");
            assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
            assert_eq!(p.welcome(), Present::Count(n as u32));
            let last = p.deadline().expect("the last change is still to be told");
            assert!(last - now <= COUNT_EVERY_MAX_MS);
            assert_eq!(
                p.tick(last),
                vec![Notice::Everyone {
                    frame: ServerMessage::PresenceCount { count: n as u32 },
                    except: None
                }],
                "the last change is told once its wait has passed"
            );
            assert!(
                p.tick(last + 120_000).is_empty(),
                "nothing new, nothing sent"
            );
        }
    }

    #[test]
    fn someone_joining_a_large_room_is_counted_in_their_welcome_and_not_sent_a_count_before_it() {
        let mut p = Presence::new();
        for i in 0..60 {
            p.join(i as u64, member(i), 0);
        }
        assert_eq!(p.welcome_for(&member(60).user_id), Present::Count(61));
        assert_eq!(
            p.welcome_for(&member(3).user_id),
            Present::Count(60),
            "a second tab"
        );
        let notices = p.join(60, member(60), 5_000);
        assert_eq!(
            notices,
            vec![Notice::Everyone {
                frame: ServerMessage::PresenceCount { count: 61 },
                except: Some(60)
            }]
        );
    }

    #[test]
    fn a_room_that_shrinks_back_tells_the_exact_count_then_announces_people_again() {
        let mut p = Presence::new();
        for i in 0..60 {
            p.join(i as u64, member(i), 0);
        }
        assert!(p.is_large());
        for i in 0..34 {
            p.leave(i as u64, 10_000 + i as Millis);
        }
        assert!(
            p.is_large(),
            "26 left: still counting (no flapping at the threshold)"
        );
        let notices = p.leave(34, 20_000);
        assert!(!p.is_large());
        assert!(notices.contains(&Notice::Everyone {
            frame: ServerMessage::PresenceCount { count: 25 },
            except: None
        }));
        assert_eq!(frames_to_everyone(&p.leave(35, 20_000)), 1);
        assert!(matches!(p.welcome(), Present::Everyone(list) if list.len() == 24));
    }

    #[test]
    fn a_slice_is_paged_searchable_and_gets_presence_for_its_members_only() {
        let mut p = Presence::new();
        for i in 0..200 {
            p.join(i as u64, member(i), 0);
        }
        let (page, total) = p.slice(7, 10, 20, None);
        assert_eq!(total, 200);
        assert_eq!(page.len(), 20);
        assert_eq!(page[0].user_id, "u0010");
        let (found, total) = p.slice(8, 0, 50, Some("person 019"));
        assert_eq!(total, 10);
        assert_eq!(found[0].name, "Person 0190");

        // Someone in socket 7's slice leaves: socket 7 hears it; someone outside does not
        // reach it.
        let notices = p.leave(15, 5_000);
        assert!(notices.contains(&Notice::Sockets(
            vec![7],
            ServerMessage::PresenceLeave {
                user_id: "u0015".into()
            }
        )));
        let notices = p.leave(150, 5_000);
        assert!(!notices.iter().any(|n| matches!(n, Notice::Sockets(..))));
        // A socket that closes stops watching.
        p.leave(7, 5_000);
        let notices = p.leave(20, 9_000);
        assert!(!notices.iter().any(|n| matches!(n, Notice::Sockets(..))));
        assert!(p.slice(9, 0, 1_000, None).0.len() <= SLICE_MAX);
    }

    #[test]
    fn typing_in_a_large_room_is_bounded_to_a_few_recent_typists() {
        let mut p = Presence::new();
        for i in 0..100 {
            p.join(i as u64, member(i), 0);
        }
        let told: Vec<bool> = (0..10).map(|i| p.typing(&member(i).user_id, 100)).collect();
        assert_eq!(told.iter().filter(|t| **t).count(), TYPISTS_SHOWN);
        assert!(
            !p.typing(&member(0).user_id, 200),
            "once per window per person"
        );
        assert!(p.typing(&member(5).user_id, 100 + TYPING_WINDOW_MS));

        let mut small = Presence::new();
        for i in 0..10 {
            small.join(i as u64, member(i), 0);
        }
        assert!((0..10).all(|i| small.typing(&member(i).user_id, 0)));
    }

    #[test]
    fn a_rename_is_what_later_welcomes_and_slices_show() {
        let mut p = Presence::new();
        p.join(1, member(1), 0);
        let renamed = Member {
            name: "Zed".into(),
            ..member(1)
        };
        p.renamed(&renamed);
        assert_eq!(p.welcome(), Present::Everyone(vec![renamed.clone()]));
        assert_eq!(p.slice(2, 0, 10, Some("zed")).0, vec![renamed]);
    }
}
