//! The full bundle's entry point for Trunk: every page, loaded on demand by the chat bundle
//! (`app::route::Route::in_chat_bundle`).

fn main() {
    #[cfg(target_arch = "wasm32")]
    app::run();
}
