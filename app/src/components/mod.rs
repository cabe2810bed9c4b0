//! The app's components. They render what they are given and dispatch user actions; the state
//! lives in `shared::client::ClientRoom` behind [`crate::conn::RoomHandle`].
//!
//! The pages outside the chat are compiled into the full bundle only (feature `full`; see
//! [`crate::route::Route::in_chat_bundle`]).

pub mod about;
#[cfg(feature = "full")]
pub mod admin_page;
pub mod ai_panels;
#[cfg(feature = "full")]
pub mod analytics_page;
pub mod answer;
pub mod app;
pub mod attachments;
pub mod banner;
#[cfg(feature = "full")]
pub mod chart;
pub mod citations;
pub mod composer;
#[cfg(feature = "full")]
pub mod devices;
pub mod files_panel;
pub mod focus;
pub mod lightbox;
pub mod link_preview;
pub mod login;
#[cfg(feature = "full")]
pub mod logs_page;
pub mod message_list;
pub mod message_row;
pub mod name_form;
pub mod name_prompt;
pub mod notice;
#[cfg(feature = "full")]
pub mod performance_page;
pub mod pins;
pub mod presence_panel;
pub mod private;
pub mod profile_card;
#[cfg(feature = "full")]
pub mod profile_page;
pub mod reactions;
pub mod room;
pub mod room_panel;
pub mod search;
#[cfg(feature = "full")]
pub mod settings_page;
pub mod sidebar;
pub mod source_panel;
pub mod thread_panel;
pub mod update_prompt;
pub mod upload_chips;

use yew::prelude::*;

/// What an admin page shows when the server says there is nothing here for this person: the
/// same words the server's `not_found` means, rather than an admin heading over "Loading…".
pub fn not_found_page() -> Html {
    html! {
        <section class="home-intro"><h1>{ "Not found" }</h1>
            <p class="muted">{ "There is no page here." }</p></section>
    }
}
