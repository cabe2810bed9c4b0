// Loads the app. A static file (not Trunk's inline loader) because the Content-Security-Policy
// allows scripts from 'self' only; Trunk and scripts/trunk-post-build.js write the hashed file
// names into this tag's data attributes.
//
// Three bundles (ARCHITECTURE.md, "The app's bundles"): the welcome bundle (data-js, data-wasm)
// shows the sign-in prompt; it raises a start event for the chat bundle (data-chat-js,
// data-chat-wasm) once there is a session, or for the full bundle (data-full-js,
// data-full-wasm) on a page outside the chat, which then takes the page over; the chat bundle
// raises the full bundle's event the same way. Wasm cannot import a module, so this loader
// does it (app/src/web.rs `Bundle`).
const el = document.querySelector('script[data-js]');

// The page's splash (app/index.html): the card with "Loading…" that every bundle renders
// first too. Kept to show again while a later bundle downloads.
const splashCopy = document.getElementById('splash').cloneNode(true);

function startOn(event, js, wasm) {
  addEventListener(event, async () => {
    let page = document.getElementById('splash');
    if (!page) {
      page = splashCopy.cloneNode(true);
      document.body.prepend(page);
    }
    const status = page.querySelector('[role=status]');
    try {
      const [bundle, module] = await Promise.all([
        import(js),
        WebAssembly.compileStreaming(fetch(wasm)),
      ]);
      // The bundle removes the splash as it renders its first page (app/src/web.rs
      // `remove_splash`), in the same turn, so the page neither blinks nor shifts.
      await bundle.default({ module_or_path: module });
    } catch (error) {
      // Offline without a cached copy, or a failed download: say so rather than stay blank.
      if (!page.isConnected) document.body.prepend(page);
      status.setAttribute('role', 'alert');
      status.textContent = 'This page could not be loaded. Check your connection and reload.';
      console.error(error);
    }
  }, { once: true });
}
startOn('durable-chat:start-chat-bundle', el.dataset.chatJs, el.dataset.chatWasm);
startOn('durable-chat:start-full-bundle', el.dataset.fullJs, el.dataset.fullWasm);

// A browser that had a session goes straight to the chat, which asks the server itself (and
// starts offline from that session when there is no answer): the key is the chat's record of
// the last session (app/src/offline.rs `KEY`), deleted when the session ends.
let hadSession = false;
try {
  hadSession = localStorage.getItem('dc_offline') !== null;
} catch {
  // Storage disabled: as a new visitor.
}
if (hadSession) {
  dispatchEvent(new Event('durable-chat:start-chat-bundle'));
} else {
  const welcome = await import(el.dataset.js);
  await welcome.default({ module_or_path: el.dataset.wasm });
}
