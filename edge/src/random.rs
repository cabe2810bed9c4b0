//! Cryptographically secure random bytes from the runtime's Web Crypto.

use worker::js_sys;
use worker::wasm_bindgen::{JsCast, JsValue};

/// Fills `buf` from `crypto.getRandomValues`. Panics only if the runtime has no Web Crypto,
/// which every Workers runtime has.
pub fn fill(buf: &mut [u8]) {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .expect("Web Crypto is available in Workers");
    let array = js_sys::Uint8Array::new_with_length(buf.len() as u32);
    let get_random_values: js_sys::Function =
        js_sys::Reflect::get(&crypto, &JsValue::from_str("getRandomValues"))
            .expect("crypto.getRandomValues exists")
            .unchecked_into();
    get_random_values
        .call1(&crypto, &array)
        .expect("crypto.getRandomValues succeeds");
    array.copy_to(buf);
}

/// 128 random bits as 32 hex characters (user ids, invite tokens).
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
