//! The chat bundle's entry point for Trunk (ARCHITECTURE.md, "The app's bundles").

fn main() {
    #[cfg(target_arch = "wasm32")]
    app::run();
}
