//! Browser tests of the components, in headless Chromium:
//! `CHROMEDRIVER=$(which chromedriver) CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner cargo test -p app --target wasm32-unknown-unknown`

#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use app::components::banner::{Banner, BannerProps};
use app::components::composer::{Composer, ComposerProps};
use app::components::message_list::{MessageList, MessageListProps};
use app::rows::{RowAction, RowCache, RowView};
use app::status::{banner_state, Link};
use shared::client::{CachedRoom, ClientRoom, Pending, PendingOp, PendingStatus};
use shared::protocol::{Author, MessageView, Role, Seq};
use shared::ErrorCode;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement, HtmlTextAreaElement, KeyboardEvent, KeyboardEventInit};
use yew::{BaseComponent, Callback};

wasm_bindgen_test_configure!(run_in_browser);

fn document() -> web_sys::Document {
    web_sys::window()
        .and_then(|w| w.document())
        .expect("a document")
}

/// Renders a component into a fresh element attached to the body.
async fn mount<C: BaseComponent>(props: C::Properties) -> Element {
    let root = document().create_element("div").expect("div");
    document()
        .body()
        .expect("body")
        .append_child(&root)
        .expect("attached");
    yew::Renderer::<C>::with_root_and_props(root.clone(), props).render();
    settle().await;
    root
}

/// Lets Yew's scheduler (which runs on the microtask queue) render.
async fn settle() {
    gloo_timers::future::TimeoutFuture::new(20).await;
}

fn author(id: &str, name: &str) -> Author {
    Author {
        id: id.into(),
        name: name.into(),
        role: Role::Member,
    }
}

fn message(seq: Seq, by: &Author, text: &str) -> MessageView {
    MessageView {
        seq,
        at: 1_700_000_000_000 + seq as i64 * 60_000,
        author: by.clone(),
        client_id: format!("c{seq}"),
        text: text.into(),
        edited_at: None,
        deleted: false,
        answer: None,
        thread: None,
        also_in_room: false,
        replies: None,
        reactions: Vec::new(),
        pinned: false,
        attachments: Vec::new(),
    }
}

fn rows(messages: Vec<MessageView>, outbox: Vec<Pending>) -> Rc<Vec<Rc<RowView>>> {
    let room = ClientRoom::from_cache(CachedRoom {
        head: messages.last().map(|m| m.seq),
        messages,
        outbox,
        me: Some(author("me", "Me")),
        ..CachedRoom::default()
    });
    RowCache::default().build(&room)
}

fn list_props(rows: Rc<Vec<Rc<RowView>>>, on_action: Callback<RowAction>) -> MessageListProps {
    MessageListProps {
        rows,
        has_more: false,
        on_action,
        on_load_older: Callback::noop(),
        first_unread: None,
    }
}

fn query(root: &Element, selector: &str) -> Element {
    root.query_selector(selector)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no element matches {selector}"))
}

fn button(root: &Element, label: &str) -> HtmlElement {
    let buttons = root.query_selector_all("button").expect("buttons");
    (0..buttons.length())
        .filter_map(|i| buttons.item(i))
        .filter_map(|n| n.dyn_into::<HtmlElement>().ok())
        .find(|b| b.text_content().as_deref() == Some(label))
        .unwrap_or_else(|| panic!("no button {label}"))
}

#[wasm_bindgen_test]
async fn the_message_list_renders_markdown_and_shows_script_source_as_text() {
    let ann = author("ann", "Ann");
    let root = mount::<MessageList>(list_props(
        rows(
            vec![
                message(1, &ann, "**bold** and `code`"),
                message(
                    2,
                    &ann,
                    "<script>window.pwned = 1</script><img src=x onerror=alert(1)>",
                ),
            ],
            vec![],
        ),
        Callback::noop(),
    ))
    .await;
    let list = query(&root, "ol[aria-label='Messages']");
    assert_eq!(list.children().length(), 2);
    let first = query(&root, "li.message[data-seq='1']");
    assert_eq!(first.get_attribute("data-client-id").as_deref(), Some("c1"));
    assert_eq!(first.get_attribute("data-status").as_deref(), Some("sent"));
    assert_eq!(
        query(&first, ".body strong").text_content().as_deref(),
        Some("bold")
    );
    assert_eq!(
        query(&first, ".author").text_content().as_deref(),
        Some("Ann")
    );
    let time = query(&first, "time").text_content().unwrap_or_default();
    assert_eq!(time.len(), 5, "HH:MM, got {time}");

    let second = query(&root, "li.message[data-seq='2']");
    assert!(second.query_selector("script").expect("query").is_none());
    assert!(second.query_selector("img").expect("query").is_none());
    let text = query(&second, ".body").text_content().unwrap_or_default();
    assert!(text.contains("<script>window.pwned = 1</script>"), "{text}");
    let pwned = js_sys::Reflect::get(&web_sys::window().expect("window"), &"pwned".into())
        .expect("reflect");
    assert!(pwned.is_undefined());
}

#[wasm_bindgen_test]
async fn pending_and_failed_sends_render_their_status_and_failed_ones_offer_retry_and_discard() {
    let failed = Pending {
        client_id: "bad".into(),
        op: PendingOp::Send {
            text: "too much".into(),
            attachments: Vec::new(),
        },
        created_at: 1_700_000_000_000,
        status: PendingStatus::Failed {
            code: ErrorCode::TooLarge,
            message: "Message is too long.".into(),
        },
    };
    let queued = Pending {
        client_id: "wait".into(),
        op: PendingOp::Send {
            text: "on its way".into(),
            attachments: Vec::new(),
        },
        created_at: 1_700_000_000_000,
        status: PendingStatus::Queued { not_before: 0 },
    };
    let actions = Rc::new(RefCell::new(Vec::new()));
    let on_action = {
        let actions = actions.clone();
        Callback::from(move |a| actions.borrow_mut().push(a))
    };
    let root =
        mount::<MessageList>(list_props(rows(vec![], vec![queued, failed]), on_action)).await;

    let pending = query(&root, "li.message[data-client-id='wait']");
    assert_eq!(
        pending.get_attribute("data-status").as_deref(),
        Some("pending")
    );
    assert!(pending
        .text_content()
        .unwrap_or_default()
        .contains("Sending…"));
    assert!(
        pending.get_attribute("data-seq").is_none(),
        "not stored yet: no seq"
    );

    let failed = query(&root, "li.message[data-client-id='bad']");
    assert_eq!(
        failed.get_attribute("data-status").as_deref(),
        Some("failed")
    );
    assert!(failed
        .text_content()
        .unwrap_or_default()
        .contains("Message is too long."));
    button(&failed, "Retry").click();
    button(&failed, "Discard").click();
    assert_eq!(
        *actions.borrow(),
        vec![
            RowAction::Retry("bad".into()),
            RowAction::Discard("bad".into())
        ]
    );
}

#[wasm_bindgen_test]
async fn own_messages_offer_edit_and_a_confirmed_delete_and_others_do_not() {
    let me = author("me", "Me");
    let ann = author("ann", "Ann");
    let actions = Rc::new(RefCell::new(Vec::new()));
    let on_action = {
        let actions = actions.clone();
        Callback::from(move |a| actions.borrow_mut().push(a))
    };
    let mut deleted = message(3, &ann, "");
    deleted.deleted = true;
    let root = mount::<MessageList>(list_props(
        rows(
            vec![message(1, &ann, "theirs"), message(2, &me, "mine"), deleted],
            vec![],
        ),
        on_action,
    ))
    .await;
    let theirs = query(&root, "li[data-seq='1']");
    assert!(theirs.query_selector(".actions").expect("query").is_none());
    let tomb = query(&root, "li[data-seq='3']");
    assert_eq!(
        query(&tomb, ".tombstone").text_content().as_deref(),
        Some("Message deleted")
    );

    let mine = query(&root, "li[data-seq='2']");
    button(&mine, "Delete").click();
    settle().await;
    assert!(actions.borrow().is_empty(), "delete waits for confirmation");
    button(&mine, "Yes, delete").click();
    settle().await;
    assert_eq!(*actions.borrow(), vec![RowAction::Delete(2)]);

    button(&mine, "Edit").click();
    settle().await;
    let editor: HtmlTextAreaElement = query(&mine, "textarea").unchecked_into();
    assert_eq!(editor.value(), "mine");
    editor.set_value("changed");
    editor
        .dispatch_event(&key("Enter", false))
        .expect("dispatched");
    settle().await;
    assert_eq!(
        actions.borrow().last(),
        Some(&RowAction::Edit(2, "changed".into()))
    );
    assert!(mine.query_selector("textarea").expect("query").is_none());
}

fn key(key: &str, shift: bool) -> KeyboardEvent {
    let init = KeyboardEventInit::new();
    init.set_key(key);
    init.set_shift_key(shift);
    init.set_bubbles(true);
    init.set_cancelable(true);
    KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).expect("event")
}

#[wasm_bindgen_test]
async fn the_composer_sends_on_enter_but_not_on_shift_enter() {
    let sent = Rc::new(RefCell::new(Vec::<String>::new()));
    let on_send = {
        let sent = sent.clone();
        Callback::from(move |text| sent.borrow_mut().push(text))
    };
    let root = mount::<Composer>(ComposerProps {
        on_send,
        on_typing: Callback::noop(),
        disabled: false,
        members: Rc::default(),
        me: None,
        placeholder: "Write a message…".into(),
        label: "Message".into(),
        uploads: None,
        target: app::upload::Target::Main,
    })
    .await;
    let area: HtmlTextAreaElement = query(&root, "textarea[aria-label='Message']").unchecked_into();
    area.set_value("line one");
    let shift_enter = key("Enter", true);
    area.dispatch_event(&shift_enter).expect("dispatched");
    assert!(
        !shift_enter.default_prevented(),
        "Shift+Enter inserts a newline"
    );
    assert!(sent.borrow().is_empty());

    let enter = key("Enter", false);
    area.dispatch_event(&enter).expect("dispatched");
    assert!(enter.default_prevented());
    assert_eq!(*sent.borrow(), vec!["line one".to_string()]);
    assert_eq!(area.value(), "", "the composer clears after sending");
}

#[wasm_bindgen_test]
async fn the_composer_refuses_a_blank_message_inline() {
    let sent = Rc::new(RefCell::new(0));
    let on_send = {
        let sent = sent.clone();
        Callback::from(move |_: String| *sent.borrow_mut() += 1)
    };
    let root = mount::<Composer>(ComposerProps {
        on_send,
        on_typing: Callback::noop(),
        disabled: false,
        members: Rc::default(),
        me: None,
        placeholder: "Write a message…".into(),
        label: "Message".into(),
        uploads: None,
        target: app::upload::Target::Main,
    })
    .await;
    let area: HtmlTextAreaElement = query(&root, "textarea").unchecked_into();
    area.set_value("   ");
    button(&root, "Send").click();
    settle().await;
    assert_eq!(*sent.borrow(), 0);
    assert_eq!(
        query(&root, ".field-error").text_content().as_deref(),
        Some("Message is empty.")
    );
}

#[wasm_bindgen_test]
async fn the_banner_counts_down_and_offers_retry_now_while_waiting() {
    let retried = Rc::new(RefCell::new(false));
    let on_retry = {
        let retried = retried.clone();
        Callback::from(move |()| *retried.borrow_mut() = true)
    };
    let root = mount::<Banner>(BannerProps {
        state: banner_state(&Link::Waiting(3_000, None), true, true, 0),
        on_retry,
    })
    .await;
    let banner = query(&root, "[role='status'].banner");
    assert_eq!(
        banner.get_attribute("data-phase").as_deref(),
        Some("reconnecting")
    );
    assert!(banner
        .text_content()
        .unwrap_or_default()
        .contains("Reconnecting in 3 s…"));
    button(&root, "Retry now").click();
    assert!(*retried.borrow());
}

#[wasm_bindgen_test]
async fn the_offline_cache_round_trips_a_room_with_its_outbox() {
    let Some(cache) = app::cache::Cache::open("round-trip-user").await else {
        panic!("IndexedDB is available in Chromium");
    };
    let room = CachedRoom {
        messages: vec![message(7, &author("ann", "Ann"), "cached")],
        head: Some(7),
        outbox: vec![Pending {
            client_id: "q1".into(),
            op: PendingOp::Send {
                text: "later".into(),
                attachments: Vec::new(),
            },
            created_at: 1,
            status: PendingStatus::Queued { not_before: 0 },
        }],
        ..CachedRoom::default()
    };
    cache.save("test-room", &room, &[]).await;
    assert_eq!(cache.load("test-room").await, Some(room.clone()));
    assert_eq!(cache.load("no-such-room").await, None);

    // A second tab of the same room writes its own state without the first tab's pending send:
    // the send survives, because outbox records are per client id.
    let other_tab = CachedRoom {
        outbox: vec![Pending {
            client_id: "q2".into(),
            op: PendingOp::Send {
                text: "from tab two".into(),
                attachments: Vec::new(),
            },
            created_at: 2,
            status: PendingStatus::Queued { not_before: 0 },
        }],
        ..room.clone()
    };
    cache.save("test-room", &other_tab, &[]).await;
    let both = cache.load("test-room").await.expect("the room is cached");
    let ids: Vec<&str> = both.outbox.iter().map(|p| p.client_id.as_str()).collect();
    assert_eq!(ids, vec!["q1", "q2"]);

    // Confirmed sends are deleted by the tab that saw them stored.
    cache
        .save(
            "test-room",
            &CachedRoom {
                outbox: vec![],
                ..room.clone()
            },
            &["q1".to_string(), "q2".to_string()],
        )
        .await;
    assert!(cache
        .load("test-room")
        .await
        .expect("the room is cached")
        .outbox
        .is_empty());
}

#[wasm_bindgen_test]
async fn each_user_has_their_own_offline_cache_and_signing_out_deletes_it() {
    use app::cache::Cache;
    let ann_room = CachedRoom {
        messages: vec![message(3, &author("ann", "Ann"), "ann's private note")],
        head: Some(3),
        outbox: vec![Pending {
            client_id: "ann-unsent".into(),
            op: PendingOp::Send {
                text: "ann's unsent message".into(),
                attachments: Vec::new(),
            },
            created_at: 1,
            status: PendingStatus::Queued { not_before: 0 },
        }],
        ..CachedRoom::default()
    };
    let ann = Cache::open("ann-id").await.expect("IndexedDB works");
    ann.save("shared-room", &ann_room, &[]).await;

    // Bob on the same browser sees neither Ann's messages nor her outbox.
    let bob = Cache::open("bob-id").await.expect("IndexedDB works");
    assert_eq!(bob.load("shared-room").await, None);

    // A session that merely ended keeps Ann's cache for her next sign-in.
    let ann = Cache::open("ann-id").await.expect("IndexedDB works");
    assert_eq!(ann.load("shared-room").await, Some(ann_room));

    // Signing out deletes it: the deletion waits for the open connection to close, and a later
    // open of the same name waits for the deletion.
    Cache::forget("ann-id");
    let ann = Cache::open("ann-id").await.expect("IndexedDB works");
    assert_eq!(ann.load("shared-room").await, None);
}

#[wasm_bindgen_test]
async fn typing_at_and_a_few_letters_offers_members_and_picking_one_completes_the_mention() {
    let members = Rc::new(vec![
        shared::protocol::Member {
            user_id: "a".into(),
            name: "Ann Lee".into(),
            avatar: None,
        },
        shared::protocol::Member {
            user_id: "b".into(),
            name: "Bob".into(),
            avatar: None,
        },
    ]);
    let root = mount::<Composer>(ComposerProps {
        on_send: Callback::noop(),
        on_typing: Callback::noop(),
        disabled: false,
        members,
        me: Some("b".into()),
        placeholder: "Write a message…".into(),
        label: "Message".into(),
        uploads: None,
        target: app::upload::Target::Main,
    })
    .await;
    let area: HtmlTextAreaElement = query(&root, "textarea").unchecked_into();
    area.set_value("hi @an");
    let _ = area.set_selection_range(6, 6);
    let input = web_sys::InputEvent::new("input").expect("an input event");
    area.dispatch_event(&input).expect("dispatched");
    settle().await;
    let options = root
        .query_selector_all(".mention-suggestions button")
        .expect("a query");
    assert_eq!(options.length(), 1, "only Ann matches, and never ourselves");
    button(&root, "@Ann Lee").click();
    settle().await;
    assert_eq!(area.value(), "hi @Ann Lee ");
    assert!(root
        .query_selector(".mention-suggestions")
        .expect("a query")
        .is_none());
}

#[wasm_bindgen_test]
async fn the_footer_shows_the_build_version_and_the_license() {
    let root = mount::<app::components::about::About>(()).await;
    let version = root
        .query_selector("footer.about .build-version")
        .expect("query")
        .expect("the version element");
    assert_eq!(version.text_content().as_deref(), Some(app::version::BUILD));
    assert!(!app::version::BUILD.is_empty());
    let text = root.text_content().unwrap_or_default();
    assert!(text.contains("MIT"), "{text}");
}
