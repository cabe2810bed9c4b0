//! A burst under coalescing, against the real Worker and room under `wrangler dev`: a client
//! that asked for batched frames and one that did not both get every message, once, in order,
//! and an ack never overtakes the event it acknowledges. Nothing asserts on elapsed time.

use e2e::client::{RoomSocket, DEFAULT_TIMEOUT};
use e2e::{DevOptions, DevServer, Result, Session};
use shared::protocol::{EventKind, ServerMessage};
use tokio::sync::OnceCell;

static SHARED: OnceCell<DevServer> = OnceCell::const_new();

/// Messages in the burst: far more than one window's worth at any speed this machine sends.
const BURST: usize = 300;

async fn server() -> &'static DevServer {
    DevServer::shared(&SHARED, || {
        // The sender sends faster than a person may; the limits would refuse the burst.
        let lifted = "1000000";
        DevOptions::default()
            .var("SEND_BURST", lifted)
            .var("SEND_PER_SECOND", lifted)
            .var("FRAME_BURST", lifted)
            .var("FRAME_PER_SECOND", lifted)
    })
    .await
}

/// Reads until `count` bench messages arrived; returns their texts in arrival order.
async fn burst_texts(socket: &mut RoomSocket, count: usize) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    while texts.len() < count {
        if let ServerMessage::Event { event } = socket.next_message(DEFAULT_TIMEOUT).await? {
            if let EventKind::Message { text, .. } = event.kind {
                texts.push(text);
            }
        }
    }
    Ok(texts)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_arrives_complete_and_in_order_whether_or_not_the_client_asked_for_batches(
) -> Result {
    let server = server().await;
    let alice = Session::create(server, "Alice").await?;
    let bob = Session::create(server, "Bob").await?;
    let carol = Session::create(server, "Carol").await?;
    let room = alice.new_room().await?;
    let (mut sender, _) = alice.join_batched(&room.slug, None).await?;
    let (mut batched, _) = bob.join_batched(&room.slug, None).await?;
    let (mut plain, _) = carol.join(&room.slug, None).await?;

    let sent: Vec<String> = (0..BURST).map(|n| format!("burst {n}")).collect();
    for (n, text) in sent.iter().enumerate() {
        // No waiting for acks: the room sees a burst.
        sender.send(&format!("b-{n}"), text).await?;
    }

    assert_eq!(burst_texts(&mut batched, BURST).await?, sent);
    assert_eq!(burst_texts(&mut plain, BURST).await?, sent);
    assert!(
        batched.batches_read() > 0,
        "the client that asked got some messages batched"
    );
    assert_eq!(
        plain.batches_read(),
        0,
        "the client that did not ask got no batch"
    );

    // The sender: every ack and every event arrives, and an ack (which the room sends just
    // before its own event) never overtakes an event that came before it: when the ack of seq s
    // arrives, every event below s has.
    let mut arrivals = Vec::new();
    let (mut acks, mut events) = (0, 0);
    while acks < BURST || events < BURST {
        match sender.next_message(DEFAULT_TIMEOUT).await? {
            ServerMessage::Event { event } => {
                events += 1;
                arrivals.push((false, event.seq));
            }
            ServerMessage::Ack { seq, .. } => {
                acks += 1;
                arrivals.push((true, seq));
            }
            ServerMessage::Error { code, message, .. } => {
                anyhow::bail!("the burst was refused: {code}: {message}")
            }
            _ => {}
        }
    }
    let event_seqs: Vec<u64> = arrivals
        .iter()
        .filter(|(ack, _)| !ack)
        .map(|(_, seq)| *seq)
        .collect();
    assert!(
        event_seqs.windows(2).all(|w| w[0] < w[1]),
        "the sender's events arrive in order"
    );
    for (i, (ack, seq)) in arrivals.iter().enumerate() {
        if *ack {
            let before = arrivals[..i].iter().filter(|(a, s)| !a && s < seq).count();
            let all = event_seqs.iter().filter(|s| *s < seq).count();
            assert_eq!(
                before, all,
                "the ack of seq {seq} overtook an earlier event"
            );
        }
    }
    Ok(())
}
