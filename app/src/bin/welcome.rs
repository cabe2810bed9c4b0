//! The welcome bundle's entry point for Trunk: the sign-in prompt, which every page runs first
//! (`app::welcome`).

fn main() {
    #[cfg(target_arch = "wasm32")]
    app::welcome::run();
}
