// Durable Chat service worker: keeps the app shell available offline.
//
// The build (scripts/build-app, `xtask precache`) replaces the placeholder below with the
// manifest of the files beside this worker: `{ version, files: [{ url, revision }] }`. So this
// file changes with every build that changes the app, which is what makes a browser install
// the new worker, and the worker precaches exactly that build.
// - Install: every file of the manifest into a cache named by its version, all or nothing (a
//   worker whose shell is incomplete never takes over from one whose shell works).
// - Activate: older versions' caches are deleted.
// - Navigations (every route is the one page): the network, falling back to the precached
//   page when the server cannot be reached or does not answer within NAVIGATION_TIMEOUT_MS.
// - The manifest's files: from the cache (a hashed name never changes its bytes; the others
//   change together with the manifest).
// - Everything else, /api/ included (HTTP and WebSocket), is not touched.
const PRECACHE = /* PRECACHE_MANIFEST */ null;
if (!PRECACHE) throw new Error('sw.js was not built: its precache manifest is missing');

const CACHE = `durable-chat-shell-${PRECACHE.version}`;
const SHELL = new Set(PRECACHE.files.map((f) => f.url));
// Long enough for a slow but working connection to bring the newest page, short enough that
// a dead one (captive portal, lie-fi) does not leave the reader staring at a blank tab.
const NAVIGATION_TIMEOUT_MS = 4000;

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // `reload`: past the HTTP cache, so the cache holds this build's bytes and not a stale copy.
    await cache.addAll(PRECACHE.files.map((f) => new Request(f.url, { cache: 'reload' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key !== CACHE && key.startsWith('durable-chat-shell-')) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

async function navigation(request) {
  const network = fetch(request);
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, NAVIGATION_TIMEOUT_MS); });
  const answer = await Promise.race([network.catch(() => null), late]);
  clearTimeout(timer);
  if (answer) return answer;
  // No answer (offline, the server down) or none in time: the precached page; without one,
  // whatever the network does (the browser's own offline page if it fails).
  const page = await caches.open(CACHE).then((c) => c.match('/'));
  return page || network;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith('/api/')) return;
  if (request.mode === 'navigate') {
    event.respondWith(navigation(request));
  } else if (SHELL.has(url.pathname)) {
    event.respondWith(caches.open(CACHE)
      .then((c) => c.match(url.pathname))
      .then((hit) => hit || fetch(request)));
  }
});
