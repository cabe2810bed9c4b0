//! The app's entry point for Trunk.

fn main() {
    #[cfg(target_arch = "wasm32")]
    app::run();
}
