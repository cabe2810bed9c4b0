// Loads the wasm-bindgen module and the app's wasm. A static file (not Trunk's inline loader)
// because the Content-Security-Policy allows scripts from 'self' only; Trunk writes the hashed
// file names into this tag's data attributes (see pattern_script in Trunk.toml).
const el = document.querySelector('script[data-js]');
const m = await import(el.dataset.js);
await m.default({ module_or_path: el.dataset.wasm });
