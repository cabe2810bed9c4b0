//! Thin helpers over browser APIs.

use shared::protocol::Millis;
use wasm_bindgen::JsValue;

/// The browser window. The app only runs in a window (not in a worker).
pub fn window() -> web_sys::Window {
    web_sys::window().expect("the app runs in a window")
}

/// A bundle of the app a page can hand itself to (ARCHITECTURE.md, "The app's bundles").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bundle {
    /// Rooms, threads, search, files and the assistant.
    Chat,
    /// Every page: the chat and the pages outside it.
    Full,
}

impl Bundle {
    /// The event raised on `window` for the page's loader (assets/boot.js) to start this
    /// bundle: wasm cannot import a module, the loader can.
    pub fn start_event(self) -> &'static str {
        match self {
            Bundle::Chat => "durable-chat:start-chat-bundle",
            Bundle::Full => "durable-chat:start-full-bundle",
        }
    }
}

/// Asks the page's loader to start `bundle`, which takes the page over.
pub fn start_bundle(bundle: Bundle) {
    if let Ok(event) = web_sys::Event::new(bundle.start_event()) {
        let _ = window().dispatch_event(&event);
    }
}

/// Removes the page's splash (app/index.html, the card with "Loading…" painted before any
/// bundle has downloaded), called by a bundle right before it renders: Yew renders in a
/// microtask of the same turn, so no frame shows neither or both.
pub fn remove_splash() {
    if let Some(splash) = window()
        .document()
        .and_then(|document| document.get_element_by_id("splash"))
    {
        splash.remove();
    }
}

/// The `?login_error=<code>` the Worker sends a failed sign-in back with; removed from the
/// address bar once read, so a reload does not show it again.
pub fn take_login_error() -> Option<shared::auth::LoginError> {
    let location = window().location();
    let search = location.search().unwrap_or_default();
    let code = search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("login_error="))?
        .to_owned();
    if let Ok(history) = window().history() {
        let path = location.pathname().unwrap_or_else(|_| "/".into());
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
    Some(shared::auth::LoginError::parse(&code))
}

/// Milliseconds since the Unix epoch.
pub fn now() -> Millis {
    js_sys::Date::now() as Millis
}

/// `HH:MM` in the reader's time zone.
pub fn local_hh_mm(at: Millis) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
    crate::format::hh_mm(date.get_hours(), date.get_minutes())
}

/// `2026-03-02` in the reader's time zone.
pub fn local_date(at: Millis) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
    crate::format::ymd(
        i64::from(date.get_full_year()),
        date.get_month() + 1,
        date.get_date(),
    )
}

/// The full local date and time, for a `title` tooltip.
pub fn local_date_time(at: Millis) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
    String::from(date.to_locale_string("default", &JsValue::UNDEFINED))
}

/// ISO 8601, for `<time datetime>`.
pub fn iso(at: Millis) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
    date.to_iso_string().into()
}

/// A fresh client id: 16 random bytes as 32 hex digits.
pub fn client_id() -> String {
    let mut bytes = [0u8; 16];
    let filled = window()
        .crypto()
        .and_then(|c| c.get_random_values_with_u8_array(&mut bytes).map(|_| ()));
    if filled.is_err() {
        // Never expected in a browser with the Web Crypto API; Math.random still yields an id
        // that is unique enough for de-duplication within one user's sends.
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `navigator.onLine` (true when unknown).
pub fn online() -> bool {
    window().navigator().on_line()
}

/// Logs a warning to the console.
pub fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}

/// Applies a profile's theme (`data-theme` on `<html>`, read by the stylesheet) and accent
/// color (the `--accent` variable, set through the CSSOM, which the CSP allows).
pub fn apply_look(profile: &shared::profile::Profile) {
    use shared::profile::Theme;
    use wasm_bindgen::JsCast;
    let Some(root) = window()
        .document()
        .and_then(|d| d.document_element())
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
    else {
        return;
    };
    let _ = match profile.theme {
        Theme::Light => root.set_attribute("data-theme", "light"),
        Theme::Dark => root.set_attribute("data-theme", "dark"),
        Theme::System | Theme::Unknown => root.remove_attribute("data-theme"),
    };
    let style = root.style();
    let _ = if profile.accent.is_empty() {
        style.remove_property("--accent").map(|_| ())
    } else {
        style.set_property("--accent", &profile.accent)
    };
}
