//! Retrieval for grounded answers over the generated fixture room (`e2e::grounding`): a real
//! room on SQLite, loaded through the room's frame handling; no server. The quality budget is
//! deterministic (the fixture and the ranking are), not a timing.

use e2e::grounding::{evaluate_retrieval, fixture, Fixture, NativeRoom, Question};
use e2e::Result;

/// The share of gold messages retrieval must rank in its top 10, averaged over the questions.
const RECALL_AT_10_BUDGET: f64 = 0.9;

fn question<'a>(fixture: &'a Fixture, text: &str) -> &'a Question {
    fixture
        .questions
        .iter()
        .find(|q| q.text == text)
        .unwrap_or_else(|| panic!("the fixture asks {text:?}"))
}

#[test]
fn retrieval_ranks_nine_in_ten_gold_messages_in_its_top_ten() -> Result {
    let fixture = fixture();
    let room = NativeRoom::load(&fixture)?;
    let report = evaluate_retrieval(&room, &fixture, 10)?;
    eprintln!(
        "retrieval over {} messages, {} questions: recall@5 {:.3}, recall@10 {:.3}, MRR {:.3}",
        fixture.lines.len(),
        report.answerable.len(),
        report.recall_5,
        report.recall_10,
        report.mrr
    );
    let misses: Vec<String> = report
        .misses(10)
        .iter()
        .map(|r| format!("{:?} (gold ranks {:?})", r.question, r.gold_ranks))
        .collect();
    assert!(
        report.recall_10 >= RECALL_AT_10_BUDGET,
        "recall@10 {:.3} is under {RECALL_AT_10_BUDGET}; missed: {misses:#?}",
        report.recall_10
    );
    Ok(())
}

#[test]
fn a_deleted_message_is_no_longer_retrieved_though_it_answered_the_question() -> Result {
    let fixture = fixture();
    let mut room = NativeRoom::load(&fixture)?;
    let q = question(
        &fixture,
        "how often does the staging database password get rotated?",
    );
    let gold = room.gold(q);
    let before = room.retrieve(q.text, 10)?;
    assert!(
        before.contains(&gold[0]),
        "the fact is retrieved before its delete: {before:?}"
    );

    room.delete(&fixture, q.gold[0])?;
    let after = room.retrieve(q.text, 10)?;
    assert!(
        !after.contains(&gold[0]),
        "a deleted message was retrieved: {after:?}"
    );
    Ok(())
}

#[test]
fn deleting_a_correction_leaves_the_fact_it_corrected_retrievable() -> Result {
    let fixture = fixture();
    let mut room = NativeRoom::load(&fixture)?;
    let q = question(&fixture, "when are we moving to the 5th floor?");
    let [fact, correction] = q.gold[..] else {
        panic!("a fact and its correction: {:?}", q.gold)
    };
    room.delete(&fixture, correction)?;
    let after = room.retrieve(q.text, 10)?;
    assert!(!after.contains(&room.seqs[correction]), "{after:?}");
    assert!(after.contains(&room.seqs[fact]), "{after:?}");
    Ok(())
}

#[test]
fn a_question_asked_before_a_correction_does_not_see_it() -> Result {
    let fixture = fixture();
    let room = NativeRoom::load(&fixture)?;
    let q = question(&fixture, "what did we decide about the v2 release date?");
    let [fact, correction] = q.gold[..] else {
        panic!("a fact and its correction: {:?}", q.gold)
    };
    let at_the_correction = room.seqs[correction];
    let found: Vec<_> = room
        .room
        .store()
        .retrieve_question(q.text, at_the_correction, 10)?
        .into_iter()
        .map(|m| m.seq)
        .collect();
    assert!(found.contains(&room.seqs[fact]), "{found:?}");
    assert!(found.iter().all(|s| *s < at_the_correction), "{found:?}");
    Ok(())
}

#[test]
fn an_answer_given_in_a_thread_reply_is_retrieved_in_the_top_ten() -> Result {
    let fixture = fixture();
    let room = NativeRoom::load(&fixture)?;
    let in_threads: Vec<&Question> = fixture
        .answerable()
        .filter(|q| q.gold.iter().any(|&i| fixture.lines[i].reply_to.is_some()))
        .collect();
    assert!(in_threads.len() >= 4, "the fixture answers in threads");
    for q in in_threads {
        let found = room.retrieve(q.text, 10)?;
        for gold in room.gold(q) {
            assert!(found.contains(&gold), "{:?}: {found:?}", q.text);
        }
    }
    Ok(())
}

#[test]
fn a_question_about_something_the_room_never_discussed_retrieves_nothing() -> Result {
    let fixture = fixture();
    let room = NativeRoom::load(&fixture)?;
    let off_topic: Vec<&Question> = fixture.questions.iter().filter(|q| q.off_topic).collect();
    assert!(
        !off_topic.is_empty(),
        "the fixture asks off-topic questions"
    );
    for q in off_topic {
        assert!(q.gold.is_empty());
        let found = room.retrieve(q.text, 10)?;
        assert!(found.is_empty(), "{:?} retrieved {found:?}", q.text);
    }
    Ok(())
}
