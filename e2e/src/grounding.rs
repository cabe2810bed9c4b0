//! A fixture room for measuring grounded answers, and the retrieval metrics over it.
//!
//! [`fixture`] generates, from a fixed seed, six weeks of a product team's room: six people,
//! [`FIXTURE_MESSAGES`] messages, with facts planted among them (some decided, some corrected
//! later, some answered in a thread reply) and many distractors (chit-chat, and near misses that
//! share a fact's words without answering it). Its [`Question`]s are asked the way people ask,
//! each with its gold set: the messages that hold the answer (both the fact and its correction
//! for a corrected one; none for a question the room cannot answer).
//!
//! [`NativeRoom`] loads the fixture into a real [`Room`] over SQLite (frames through
//! [`Room::on_frame`], as the Durable Object feeds them) and maps each fixture message to its
//! seq; [`evaluate_retrieval`] asks every question of the store's full-text retrieval and scores
//! it (recall@5, recall@10, mean reciprocal rank). `e2e/tests/grounding.rs` holds the quality
//! budget; `e2e/src/bin/grounding.rs` prints the numbers and, with `--answers`, scores the
//! answers of the real Worker and a model.

use anyhow::{bail, Context};
use shared::protocol::{
    Author, ClientMessage, Millis, Role, RoomInfo, Seq, ServerMessage, PROTOCOL_VERSION,
};
use shared::rate_limit::RateLimits;
use shared::room::store::sqlite::Sqlite;
use shared::room::{presence, Conn, ConnLimiter, Effect, Frame, Room, SqlStore};

use crate::Result;

/// The people of the fixture room, by index.
pub const PEOPLE: [&str; 6] = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid"];
/// How many messages the fixture holds.
pub const FIXTURE_MESSAGES: usize = 600;
/// Days the fixture spans.
pub const FIXTURE_DAYS: u32 = 42;
/// The fixture's first day, 09:00 UTC (Monday 3 February 2025).
pub const FIXTURE_START: Millis = 1_738_573_200_000;
const DAY_MS: Millis = 24 * 60 * 60 * 1000;
/// The generator's seed: the same fixture on every run and machine.
const SEED: u64 = 0x6752_6f75_6e64_6564;

/// One message of the fixture, in posting order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Who posts it (an index into [`PEOPLE`]).
    pub author: usize,
    /// When.
    pub at: Millis,
    /// The text.
    pub text: String,
    /// For a thread reply: the index of its root (an earlier line).
    pub reply_to: Option<usize>,
    /// The planted fact's key, for a planted message.
    pub key: Option<&'static str>,
}

/// A question and the lines that answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// As a person would type it (without `@assistant`).
    pub text: &'static str,
    /// The indices of the lines that hold the answer; empty when the room cannot answer it.
    pub gold: Vec<usize>,
    /// Values an answer holds when it answers (any of them, ignoring case): a proxy for an
    /// answer being right, for answerable questions.
    pub expect: &'static [&'static str],
    /// For an unanswerable question: none of its words appears anywhere in the room (so the
    /// room must retrieve nothing), as against a near miss that shares some words.
    pub off_topic: bool,
}

/// The generated room and its questions.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The messages, oldest first.
    pub lines: Vec<Line>,
    /// Questions the room can answer, then those it cannot.
    pub questions: Vec<Question>,
}

impl Fixture {
    /// The line of a planted fact.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.lines.iter().position(|l| l.key == Some(key))
    }

    /// The questions with an answer in the room.
    pub fn answerable(&self) -> impl Iterator<Item = &Question> {
        self.questions.iter().filter(|q| !q.gold.is_empty())
    }

    /// The questions without one.
    pub fn unanswerable(&self) -> impl Iterator<Item = &Question> {
        self.questions.iter().filter(|q| q.gold.is_empty())
    }
}

/// A planted message: on `day`, by `author`, in the thread of the planted `root` when set.
struct Planted {
    key: &'static str,
    day: u32,
    author: usize,
    text: &'static str,
    root: Option<&'static str>,
}

const fn fact(key: &'static str, day: u32, author: usize, text: &'static str) -> Planted {
    Planted {
        key,
        day,
        author,
        text,
        root: None,
    }
}

const fn reply(
    key: &'static str,
    day: u32,
    author: usize,
    root: &'static str,
    text: &'static str,
) -> Planted {
    Planted {
        key,
        day,
        author,
        text,
        root: Some(root),
    }
}

const ANA: usize = 0;
const BEN: usize = 1;
const CHLOE: usize = 2;
const DEV: usize = 3;
const ELIF: usize = 4;
const FARID: usize = 5;

/// The facts, decisions, corrections and threads the questions are about, in posting order
/// within a day. Thread roots that only ask are planted too (their replies answer).
const PLANTED: &[Planted] = &[
    fact("parking", 1, BEN, "Parking cards for the garage are at reception now, just ask Maria."),
    fact("wifi", 2, BEN, "New guest wifi password at the office: harbor-lights-77"),
    fact("pw_rotation", 3, DEV, "Reminder: the staging DB password is rotated every 90 days, next rotation is on the 14th. Vault always has the current one."),
    fact("postgres", 4, DEV, "Heads up: all new services should use Postgres 16, we're standardizing on it across the board."),
    fact("v2_date", 5, ANA, "Decision from today's sync: the v2 release goes out on March 10."),
    fact("interview", 6, ELIF, "Backend interview loop is 4 rounds: recruiter screen, system design, coding, values."),
    fact("billing_root", 7, ANA, "Who wants to own the billing migration to Stripe?"),
    reply("billing_owner", 7, FARID, "billing_root", "I'll take the billing migration. Elif will review the webhook handlers."),
    reply("billing_thanks", 7, ANA, "billing_root", "Perfect, thank you both!"),
    fact("encryption", 8, FARID, "Security reminder: every laptop needs full disk encryption turned on by the end of the month, IT will check."),
    fact("venue", 9, CHLOE, "Venue is booked for the launch party: Harbor Hall on Pier 3, doors open at 6pm."),
    fact("mkt_budget", 10, BEN, "The Q2 marketing budget got approved at 40k, most of it goes to the launch campaign."),
    fact("pm_root", 11, CHLOE, "Where are we supposed to put incident postmortems these days?"),
    reply("pm_answer", 11, DEV, "pm_root", "Postmortems go in the Notion Incidents space, there's a template pinned at the top."),
    fact("offsite", 12, ELIF, "Offsite is confirmed: Lisbon, April 22 to 24. Hotel details to follow."),
    fact("approvals", 13, FARID, "From now on production deploys need two approvals in the pipeline, no exceptions."),
    fact("oncall", 14, DEV, "On-call handoff is weekly from now on, Mondays at 10am, starting next week."),
    fact("logo", 15, CHLOE, "We're going with the teal logo (Ben's version B). Final files are in the brand folder."),
    fact("design_review", 16, CHLOE, "Design reviews are moving to Thursdays at 3pm so more engineers can join."),
    fact("standup", 17, ANA, "Standup moves to 9:30 starting next week."),
    fact("acme", 18, BEN, "Acme renewed! Two more years, they signed this morning."),
    fact("standup_fix", 19, ANA, "Scratch that: standup stays at 9:15, too many people have conflicts at 9:30."),
    fact("v2_date_fix", 20, ANA, "Correction on v2: the release date moves to March 17, the SSO bug needs another week."),
    fact("monitoring", 21, DEV, "We picked Datadog over Grafana Cloud for monitoring, cost was the tie-breaker."),
    fact("api_limit", 22, FARID, "Agreed in the API review: the public API rate limit is 600 requests per minute per key."),
    fact("expenses", 23, BEN, "Finance rule: expense reports over $500 need my sign-off before they are paid."),
    fact("freeze", 24, ANA, "Code freeze for v2 starts March 13 at noon. Only fixes after that."),
    fact("dinner", 25, ELIF, "Team dinner on Friday at Rosa's Cantina, 7pm, I booked a table for 12."),
    fact("allhands_root", 26, CHLOE, "Who's presenting at next week's all-hands?"),
    reply("allhands_answer", 26, DEV, "allhands_root", "Elif presents the roadmap and I'll do the live demo."),
    fact("interview_fix", 27, ELIF, "Update: we cut the backend interview loop to 3 rounds, coding and system design are merged."),
    fact("dinner_fix", 28, ELIF, "Dinner change: Rosa's cancelled on us, we're at Nopa instead, same time."),
    fact("office_move", 29, ANA, "Facilities confirmed we move to the 5th floor on April 1."),
    fact("flaky_root", 30, DEV, "What do we do about the flaky checkout tests?"),
    reply("flaky_answer", 30, BEN, "flaky_root", "Quarantine the flaky checkout tests this week, I'll rewrite them next sprint."),
    reply("flaky_plus", 30, ELIF, "flaky_root", "+1"),
    fact("globex", 31, BEN, "Globex asked for a refund on the February invoice, finance approved it today."),
    fact("creds", 32, FARID, "Everyone: move shared credentials into 1Password by Friday, no more secrets in docs."),
    fact("rustconf", 33, CHLOE, "Dev and I got our talks accepted at RustConf in September!"),
    fact("office_move_fix", 34, ANA, "Correction: the 5th floor move slipped to April 15, the landlord is running late."),
    fact("analytics", 35, ELIF, "We're dropping Mixpanel, product analytics moves to PostHog next month."),
    fact("backups", 36, DEV, "Nightly backups are kept for 30 days, then they go to cold storage."),
    fact("interns", 37, ELIF, "Both summer interns start on June 2, their laptops are ordered."),
    fact("eu_root", 38, FARID, "Which region should the new EU cluster go to?"),
    reply("eu_answer", 38, DEV, "eu_root", "Frankfurt (eu-central-1) for the cluster, latency from Paris and Warsaw looked best there."),
    fact("api_docs", 39, FARID, "API docs now live at docs.internal/api, the old wiki page is deprecated."),
    fact("page_load", 40, CHLOE, "Goal for this quarter: p95 page load under 2 seconds on the dashboard."),
];

/// The questions: text, the keys of the lines that answer them (empty: the room cannot), and
/// the values an answer holds when it answers (any of them, ignoring case).
const QUESTIONS: &[Ask] = &[
    ask(
        "how often does the staging database password get rotated?",
        &["pw_rotation"],
        &["90"],
    ),
    ask(
        "what venue did we book for the launch?",
        &["venue"],
        &["Harbor Hall"],
    ),
    ask(
        "what did we decide about the v2 release date?",
        &["v2_date", "v2_date_fix"],
        &["March 17", "Mar 17"],
    ),
    ask(
        "when is v2 going out?",
        &["v2_date", "v2_date_fix"],
        &["March 17", "Mar 17"],
    ),
    ask("where is the offsite this year?", &["offsite"], &["Lisbon"]),
    ask(
        "who is in charge of the billing migration?",
        &["billing_owner"],
        &["Farid"],
    ),
    ask(
        "when does the on-call handoff happen?",
        &["oncall"],
        &["Monday"],
    ),
    ask(
        "what day are design reviews on now?",
        &["design_review"],
        &["Thursday"],
    ),
    ask(
        "how big is the marketing budget for Q2?",
        &["mkt_budget"],
        &["40k", "40,000", "40000", "40 000"],
    ),
    ask(
        "did Acme renew their contract?",
        &["acme"],
        &["renewed", "two more years", "2 years", "two years"],
    ),
    ask(
        "which postgres version should new services use?",
        &["postgres"],
        &["16"],
    ),
    ask(
        "what rate limit did we agree on for the public API?",
        &["api_limit"],
        &["600"],
    ),
    ask(
        "how many interview rounds does the backend loop have?",
        &["interview", "interview_fix"],
        &["3 rounds", "three"],
    ),
    ask(
        "what's the guest wifi password?",
        &["wifi"],
        &["harbor-lights-77"],
    ),
    ask("where do postmortems live?", &["pm_answer"], &["Notion"]),
    ask(
        "when does the code freeze begin?",
        &["freeze"],
        &["March 13", "Mar 13"],
    ),
    ask(
        "where is the team dinner on Friday?",
        &["dinner", "dinner_fix"],
        &["Nopa"],
    ),
    ask(
        "how many approvals does a production deploy need?",
        &["approvals"],
        &["two", "2 approvals"],
    ),
    ask("which logo did we pick in the end?", &["logo"], &["teal"]),
    ask(
        "what time is standup now?",
        &["standup", "standup_fix"],
        &["9:15"],
    ),
    ask(
        "which monitoring tool did we choose?",
        &["monitoring"],
        &["Datadog"],
    ),
    ask(
        "who is presenting at the all-hands?",
        &["allhands_answer"],
        &["Elif"],
    ),
    ask(
        "is disk encryption required on our laptops?",
        &["encryption"],
        &["end of the month", "yes"],
    ),
    ask(
        "where do I get a parking card?",
        &["parking"],
        &["reception", "Maria"],
    ),
    ask(
        "who signs off on expenses over 500 dollars?",
        &["expenses"],
        &["Ben"],
    ),
    ask(
        "when are we moving to the 5th floor?",
        &["office_move", "office_move_fix"],
        &["April 15", "Apr 15"],
    ),
    ask(
        "what's the plan for the flaky tests?",
        &["flaky_answer"],
        &["quarantin"],
    ),
    ask(
        "did Globex get the refund they asked for?",
        &["globex"],
        &["approved", "yes"],
    ),
    ask(
        "where should we keep shared credentials?",
        &["creds"],
        &["1Password"],
    ),
    ask(
        "who is speaking at RustConf?",
        &["rustconf"],
        &["Chloe", "Dev"],
    ),
    ask(
        "which analytics tool are we switching to?",
        &["analytics"],
        &["PostHog"],
    ),
    ask("how long do we keep backups?", &["backups"], &["30 days"]),
    ask("when do the interns start?", &["interns"], &["June 2"]),
    ask(
        "which region hosts the EU cluster?",
        &["eu_answer"],
        &["Frankfurt", "eu-central-1"],
    ),
    ask(
        "where can I find the API docs?",
        &["api_docs"],
        &["docs.internal"],
    ),
    ask(
        "what's our page load target?",
        &["page_load"],
        &["2 seconds", "two seconds", "2s"],
    ),
    // The room cannot answer these: near misses (they share words with the room) and
    // off-topic ones ([`OFF_TOPIC`]).
    ask("who is the new CFO?", &[], &[]),
    ask(
        "what did we decide about dark mode in the mobile app?",
        &[],
        &[],
    ),
    ask("when is the next board meeting?", &[], &[]),
    ask("how much did the Kubernetes upgrade cost?", &[], &[]),
    ask("what's the parental leave policy?", &[], &[]),
    ask("what did the Zurich auditors conclude?", &[], &[]),
    ask("is there a sabbatical program?", &[], &[]),
];

struct Ask {
    text: &'static str,
    gold: &'static [&'static str],
    expect: &'static [&'static str],
}

const fn ask(
    text: &'static str,
    gold: &'static [&'static str],
    expect: &'static [&'static str],
) -> Ask {
    Ask { text, gold, expect }
}

/// Unanswerable questions none of whose words the room ever uses.
const OFF_TOPIC: &[&str] = &[
    "what did the Zurich auditors conclude?",
    "is there a sabbatical program?",
];

/// Chit-chat: what most of a room is.
const CHATTER: &[&str] = &[
    "morning all",
    "good morning!",
    "anyone up for lunch at 12:30?",
    "lunch was great, thanks for organizing",
    "coffee machine on 4 is broken again",
    "brb, grabbing a coffee",
    "happy Friday everyone",
    "has anyone seen my charger? the white one",
    "I'm out tomorrow afternoon, dentist",
    "working from home today, ping me here",
    "thanks!",
    "nice work",
    "haha yes",
    "sounds good to me",
    "lol",
    "agreed",
    "on it",
    "can someone hop on a quick call?",
    "sorry, was in a meeting, catching up now",
    "who left cake in the kitchen? it's amazing",
    "it's raining so hard here",
    "did everyone get the survey email?",
    "the train was late again, be there in 10",
    "I'll be a bit late to the 2pm",
    "does anyone have a spare HDMI adapter?",
    "happy birthday Chloe!",
    "congrats on the baby, Dev!",
    "back from vacation, what did I miss?",
    "weekend plans anyone?",
    "I made sourdough again, bringing some Monday",
    "the new chairs are much better",
    "can we move the 1:1 to Thursday?",
    "my calendar is a mess this week",
    "need a second pair of eyes on a PR when someone has a minute",
    "PR is up for the export button fix",
    "merged, thanks for the review",
    "tests are green now",
    "rebased, should be fine",
    "I'll pair with you after lunch",
    "that bug was a one-character typo, of course",
    "who's doing the retro notes this time?",
    "retro is at 4 today",
    "sprint planning moved to 11",
    "ticket is in the backlog, will pick it up next",
    "can't reproduce on my machine",
    "works for me now, probably a cache",
    "restarted my laptop and it's fine",
    "the VPN is slow today",
    "Slack is down? oh no wait it's back",
    "just pushed a fix",
    "the printer on 3 is jammed",
    "pizza's here!",
    "fire drill at 11, heads up",
    "the elevator is out of service again",
    "anyone watching the game tonight?",
    "I'm going to be offline for an hour",
    "great demo today",
    "love the new onboarding flow",
    "cleaning up old branches, shout if you need one",
    "updated the README",
];

/// Near misses: they share a planted fact's words without answering its question. Each is said
/// once (a room does not repeat a remark word for word; chatter like "thanks!" it does).
const NEAR_MISSES: &[&str] = &[
    "staging is flaky again this morning",
    "staging deploy took 40 minutes, something is off",
    "database CPU spiked at noon, looking into it",
    "locked myself out of the wiki, password reset emails are slow",
    "the password manager browser extension keeps logging me out",
    "launch checklist is in the shared doc, please add your items",
    "launch blog post draft needs a few more eyes",
    "the venue for last year's meetup had terrible acoustics",
    "v2 release notes draft is up for review",
    "v2 release checklist: 14 of 20 items done",
    "do we have a date for the team photo yet?",
    "offsite agenda doc is open for suggestions",
    "still laughing about last year's offsite karaoke",
    "billing dashboard shows more failed cards than usual",
    "the billing emails have a typo in the footer",
    "the search index migration ran overnight without issues",
    "migration scripts for the reporting tables are merged",
    "the on-call rotation spreadsheet has my name twice, can someone fix it?",
    "rough on-call night, three pages before 4am",
    "design system tokens landed in main",
    "can someone review my PR for the settings page?",
    "travel budget spreadsheet is read-only, who can edit it?",
    "marketing wants fresh screenshots by Wednesday",
    "Acme's admin asked about SSO again",
    "contract templates moved to the legal drive",
    "postgres connection pool maxed out on staging",
    "which node version does CI use these days?",
    "API latency looks fine today",
    "got rate limited by GitHub again during the release build",
    "interview feedback for the frontend candidate is due today",
    "office wifi is dead in the kitchen corner",
    "the postmortem for Tuesday's outage is on the calendar for Friday",
    "is the code review guide still up to date?",
    "dinner recommendations near the office? my parents are visiting",
    "deploy went out at 3, all green",
    "waiting on approval for my new monitor",
    "logo files for the slides are in the brand folder",
    "skipping standup today, I'll post an update here",
    "standup notes are in the doc",
    "monitoring alert for disk space on worker-3, cleared it",
    "all-hands recording is up on the drive",
    "the TLS certificate renewal is done",
    "parking was full again this morning, had to go round the block",
    "the expense tool is down, will submit tomorrow",
    "the 3rd floor kitchen is being cleaned this week",
    "another flaky test in the search suite, retrying",
    "the refund policy page has a broken link",
    "RustConf videos from last year are worth a watch",
    "analytics dashboard for signups got a new chart",
    "the backup job failed once last night, the retry worked",
    "intern project ideas are welcome in the doc",
    "cluster autoscaler bumped us to 12 nodes overnight",
    "docs search is broken on mobile",
    "page load on the settings page feels slow to me",
    "the launch party playlist needs suggestions",
    "who has the keys to the storage room?",
    "freezer in the kitchen is full of someone's ice cream",
    "the new region picker in the UI looks great",
    "finance asked everyone to file receipts on time",
    "the laptop refresh is next quarter I think",
];

/// Subjects and remarks combined into ordinary work messages.
const SUBJECTS: &[&str] = &[
    "the export job",
    "the onboarding email",
    "the search page",
    "the admin panel",
    "the sign-up form",
    "the mobile build",
    "the nightly report",
    "the CSV import",
    "the notifications service",
    "the settings page",
    "the invite flow",
    "the audit log",
    "the dark theme",
    "the image resizer",
    "the webhook retries",
    "the sidebar",
    "the changelog",
    "the status page",
];

const REMARKS: &[&str] = &[
    "is done, please take a look",
    "needs another pass",
    "is blocked on review",
    "has a weird edge case with empty names",
    "looks much faster after the fix",
    "broke on Safari, investigating",
    "is ready for QA",
    "got a few complaints from users",
    "should be behind a feature flag",
    "has a ticket now",
    "is next on my list",
    "is failing intermittently",
    "works again after the rollback",
    "could use some tests",
    "is shipped to everyone",
];

/// A small deterministic generator (SplitMix64): the fixture must not depend on a crate's
/// algorithm changing between versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// The generated (not planted) messages, in a random order: every near miss once, the rest
/// chatter and work remarks.
fn distractors(rng: &mut Rng, count: usize) -> Vec<String> {
    let mut out: Vec<String> = NEAR_MISSES.iter().map(|s| (*s).to_owned()).collect();
    while out.len() < count {
        out.push(if rng.below(2) == 0 {
            rng.pick(CHATTER).to_owned()
        } else {
            format!("{} {}", rng.pick(SUBJECTS), rng.pick(REMARKS))
        });
    }
    // Fisher-Yates.
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i + 1));
    }
    out.truncate(count);
    out
}

/// The fixture: the same on every call.
pub fn fixture() -> Fixture {
    let mut rng = Rng(SEED);
    // How many distractors each day gets: spread at random, none on a weekend.
    let workdays: Vec<u32> = (0..FIXTURE_DAYS).filter(|d| d % 7 < 5).collect();
    let mut per_day = vec![0usize; FIXTURE_DAYS as usize];
    for _ in 0..FIXTURE_MESSAGES - PLANTED.len() {
        per_day[workdays[rng.below(workdays.len())] as usize] += 1;
    }
    let mut distractors = distractors(&mut rng, FIXTURE_MESSAGES - PLANTED.len()).into_iter();

    let mut lines: Vec<Line> = Vec::with_capacity(FIXTURE_MESSAGES);
    for day in 0..FIXTURE_DAYS {
        // The day's messages in order: distractors, with the day's planted ones placed at
        // random points (keeping their own order, so a reply follows its root).
        let planted: Vec<&Planted> = PLANTED.iter().filter(|p| p.day == day).collect();
        let total = per_day[day as usize] + planted.len();
        let mut slots: Vec<bool> = vec![false; total];
        let mut placed = 0;
        while placed < planted.len() {
            let i = rng.below(total);
            if !slots[i] {
                slots[i] = true;
                placed += 1;
            }
        }
        // Times: sorted minutes over the working day (09:00 to 18:00).
        let mut minutes: Vec<i64> = (0..total).map(|_| rng.below(9 * 60) as i64).collect();
        minutes.sort_unstable();
        let mut planted = planted.into_iter();
        let day_start = lines.len();
        for (slot, minute) in slots.into_iter().zip(minutes) {
            let at = FIXTURE_START + day as Millis * DAY_MS + minute * 60_000;
            let line = if slot {
                let Some(p) = planted.next() else { break };
                Line {
                    author: p.author,
                    at,
                    text: p.text.to_owned(),
                    reply_to: p
                        .root
                        .and_then(|root| lines.iter().position(|l: &Line| l.key == Some(root))),
                    key: Some(p.key),
                }
            } else {
                // Some of the chatter is a reply in a thread started earlier that day.
                let top_level: Vec<usize> = (day_start..lines.len())
                    .filter(|&i| lines[i].reply_to.is_none() && lines[i].key.is_none())
                    .collect();
                let reply_to = (!top_level.is_empty() && rng.below(12) == 0)
                    .then(|| top_level[rng.below(top_level.len())]);
                Line {
                    author: rng.below(PEOPLE.len()),
                    at,
                    text: distractors.next().unwrap_or_default(),
                    reply_to,
                    key: None,
                }
            };
            lines.push(line);
        }
    }

    let index = |key: &str| {
        lines
            .iter()
            .position(|l| l.key == Some(key))
            .unwrap_or_else(|| panic!("the fixture plants {key}"))
    };
    let questions = QUESTIONS
        .iter()
        .map(|q| Question {
            text: q.text,
            gold: q.gold.iter().map(|k| index(k)).collect(),
            expect: q.expect,
            off_topic: OFF_TOPIC.contains(&q.text),
        })
        .collect();
    Fixture { lines, questions }
}

/// Rate limits no fixture load reaches.
fn generous() -> RateLimits {
    RateLimits {
        send_burst: 1e9,
        send_per_second: 1e9,
        frame_burst: 1e9,
        frame_per_second: 1e9,
    }
}

/// The fixture in a real room on in-memory SQLite, loaded through the room's frame handling as
/// the Durable Object would feed it (hellos, sends, thread replies), at the fixture's times.
pub struct NativeRoom {
    /// The room.
    pub room: Room<Sqlite>,
    /// The seq of each fixture line.
    pub seqs: Vec<Seq>,
    /// The seq after the last line: questions are asked "at the end", before this.
    pub end: Seq,
    conns: Vec<Conn>,
    limiters: Vec<ConnLimiter>,
    now: Millis,
    next_id: u64,
}

impl NativeRoom {
    /// A fresh room with the fixture loaded.
    pub fn load(fixture: &Fixture) -> Result<NativeRoom> {
        let info = RoomInfo {
            slug: "grounding".into(),
            name: "Grounding fixture".into(),
            topic: "a product team".into(),
            created_at: FIXTURE_START,
            last_activity: None,
            message_count: 0,
            assistant: Default::default(),
            private: false,
        };
        let store = SqlStore::open(Sqlite::memory()?)?;
        let mut room = NativeRoom {
            room: Room::open(store, info)?,
            seqs: Vec::with_capacity(fixture.lines.len()),
            end: 0,
            conns: PEOPLE
                .iter()
                .map(|name| {
                    Conn::new(Author {
                        id: name.to_lowercase(),
                        name: (*name).to_owned(),
                        role: Role::Member,
                    })
                })
                .collect(),
            limiters: PEOPLE
                .iter()
                .map(|_| ConnLimiter::new(generous(), FIXTURE_START))
                .collect(),
            now: FIXTURE_START,
            next_id: 0,
        };
        for (person, name) in PEOPLE.iter().enumerate() {
            let effects = room.frame(
                person,
                &ClientMessage::Hello {
                    protocol: PROTOCOL_VERSION,
                    after: None,
                },
            )?;
            if !effects.contains(&Effect::Joined) {
                bail!("{name} was not admitted: {effects:?}");
            }
            room.conns[person].joined = true;
        }
        for (i, line) in fixture.lines.iter().enumerate() {
            room.now = line.at;
            let client_id = room.client_id();
            let message = match line.reply_to {
                None => ClientMessage::Send {
                    client_id: client_id.clone(),
                    text: line.text.clone(),
                    attachments: Vec::new(),
                },
                Some(root) => ClientMessage::Reply {
                    client_id: client_id.clone(),
                    target: room.seqs[root],
                    text: line.text.clone(),
                    also_in_room: false,
                    attachments: Vec::new(),
                },
            };
            let seq = room
                .mutate(line.author, &message, &client_id)
                .with_context(|| format!("line {i}: {:?}", line.text))?;
            room.seqs.push(seq);
        }
        room.end = room.room.head() + 1;
        Ok(room)
    }

    fn client_id(&mut self) -> String {
        self.next_id += 1;
        format!("g{}", self.next_id)
    }

    fn frame(&mut self, person: usize, message: &ClientMessage) -> Result<Vec<Effect>> {
        let raw = serde_json::to_string(message)?;
        let conns = self.conns.clone();
        Ok(self.room.on_frame(
            &self.conns[person],
            &mut self.limiters[person],
            Frame::Text(&raw),
            self.now,
            || presence(conns.iter()),
        ))
    }

    /// Sends a mutation and returns the seq of its ack (an error frame fails).
    fn mutate(&mut self, person: usize, message: &ClientMessage, client_id: &str) -> Result<Seq> {
        let effects = self.frame(person, message)?;
        for effect in &effects {
            if let Effect::Reply(ServerMessage::Ack {
                client_id: id, seq, ..
            }) = effect
            {
                if id == client_id {
                    return Ok(*seq);
                }
            }
        }
        bail!("no ack for {client_id}: {effects:?}")
    }

    /// The author of fixture line `index` deletes it, as they would from the app.
    pub fn delete(&mut self, fixture: &Fixture, index: usize) -> Result {
        let client_id = self.client_id();
        let message = ClientMessage::Delete {
            client_id: client_id.clone(),
            target: self.seqs[index],
        };
        self.mutate(fixture.lines[index].author, &message, &client_id)?;
        Ok(())
    }

    /// The seqs full-text retrieval returns for `question`, asked at the end, best first.
    pub fn retrieve(&self, question: &str, limit: u32) -> Result<Vec<Seq>> {
        Ok(self
            .room
            .store()
            .retrieve_question(question, self.end, limit)?
            .into_iter()
            .map(|m| m.seq)
            .collect())
    }

    /// The gold set of a question, as seqs.
    pub fn gold(&self, question: &Question) -> Vec<Seq> {
        question.gold.iter().map(|&i| self.seqs[i]).collect()
    }
}

/// The share of `gold` among the first `k` of `ranked` (1 when there is no gold).
pub fn recall_at(gold: &[Seq], ranked: &[Seq], k: usize) -> f64 {
    if gold.is_empty() {
        return 1.0;
    }
    let found = gold
        .iter()
        .filter(|g| ranked.iter().take(k).any(|r| r == *g))
        .count();
    found as f64 / gold.len() as f64
}

/// 1 / the rank of the first gold message in `ranked`, 0 when none is there.
pub fn reciprocal_rank(gold: &[Seq], ranked: &[Seq]) -> f64 {
    ranked
        .iter()
        .position(|r| gold.contains(r))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// One question's retrieval.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Retrieved {
    /// The question.
    pub question: String,
    /// Its gold seqs.
    pub gold: Vec<Seq>,
    /// What retrieval returned, best first.
    pub ranked: Vec<Seq>,
    /// The 1-based rank of each gold seq, `None` when it was not returned.
    pub gold_ranks: Vec<Option<usize>>,
    /// recall@5.
    pub recall_5: f64,
    /// recall@10.
    pub recall_10: f64,
    /// Reciprocal rank of the first gold.
    pub reciprocal_rank: f64,
}

/// Retrieval over every question of the fixture.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RetrievalReport {
    /// Answerable questions, each scored.
    pub answerable: Vec<Retrieved>,
    /// Unanswerable ones: what they retrieve (no gold).
    pub unanswerable: Vec<Retrieved>,
    /// Mean recall@5 over answerable questions.
    pub recall_5: f64,
    /// Mean recall@10.
    pub recall_10: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
}

impl RetrievalReport {
    /// The answerable questions whose gold is not all in the top `k`.
    pub fn misses(&self, k: usize) -> Vec<&Retrieved> {
        self.answerable
            .iter()
            .filter(|r| recall_at(&r.gold, &r.ranked, k) < 1.0)
            .collect()
    }
}

/// Asks every question of `fixture` of the room's full-text retrieval, `limit` results each.
pub fn evaluate_retrieval(
    room: &NativeRoom,
    fixture: &Fixture,
    limit: u32,
) -> Result<RetrievalReport> {
    let mut answerable = Vec::new();
    let mut unanswerable = Vec::new();
    for question in &fixture.questions {
        let gold = room.gold(question);
        let ranked = room.retrieve(question.text, limit)?;
        let retrieved = Retrieved {
            question: question.text.to_owned(),
            gold_ranks: gold
                .iter()
                .map(|g| ranked.iter().position(|r| r == g).map(|i| i + 1))
                .collect(),
            recall_5: recall_at(&gold, &ranked, 5),
            recall_10: recall_at(&gold, &ranked, 10),
            reciprocal_rank: reciprocal_rank(&gold, &ranked),
            gold,
            ranked,
        };
        if question.gold.is_empty() {
            unanswerable.push(retrieved);
        } else {
            answerable.push(retrieved);
        }
    }
    let mean = |f: fn(&Retrieved) -> f64| {
        answerable.iter().map(f).sum::<f64>() / answerable.len().max(1) as f64
    };
    Ok(RetrievalReport {
        recall_5: mean(|r| r.recall_5),
        recall_10: mean(|r| r.recall_10),
        mrr: mean(|r| r.reciprocal_rank),
        answerable,
        unanswerable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_is_the_same_on_every_call_and_has_its_planned_size() {
        let a = fixture();
        let b = fixture();
        assert_eq!(a.lines, b.lines);
        assert_eq!(a.lines.len(), FIXTURE_MESSAGES);
        assert!(a.answerable().count() >= 30);
        assert!(a.unanswerable().count() >= 3);
    }

    #[test]
    fn every_reply_follows_its_root_and_every_correction_follows_its_fact() {
        let f = fixture();
        for (i, line) in f.lines.iter().enumerate() {
            if let Some(root) = line.reply_to {
                assert!(root < i && f.lines[root].reply_to.is_none(), "line {i}");
            }
        }
        for (fact, fix) in [
            ("v2_date", "v2_date_fix"),
            ("standup", "standup_fix"),
            ("interview", "interview_fix"),
            ("dinner", "dinner_fix"),
            ("office_move", "office_move_fix"),
        ] {
            assert!(f.index_of(fact) < f.index_of(fix), "{fact}");
        }
        let span = f.lines.last().map(|l| l.at).unwrap_or(0) - f.lines[0].at;
        assert!(span > 5 * 7 * DAY_MS, "six weeks, not {span} ms");
    }

    #[test]
    fn off_topic_questions_share_no_word_with_the_room() {
        let f = fixture();
        let room: String = f
            .lines
            .iter()
            .map(|l| l.text.to_lowercase() + " ")
            .collect();
        for q in f.questions.iter().filter(|q| q.off_topic) {
            for term in shared::grounding::retrieval_terms(q.text) {
                assert!(!room.contains(&term), "{:?} has {term:?}", q.text);
            }
        }
    }

    #[test]
    fn recall_and_reciprocal_rank_count_gold_by_position() {
        assert_eq!(recall_at(&[3, 9], &[1, 3, 5], 2), 0.5);
        assert_eq!(recall_at(&[3, 9], &[1, 3, 5], 1), 0.0);
        assert_eq!(reciprocal_rank(&[9], &[1, 3, 9]), 1.0 / 3.0);
        assert_eq!(reciprocal_rank(&[9], &[1]), 0.0);
    }
}
