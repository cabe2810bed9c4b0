// Durable Chat service worker: keeps the app shell available offline.
// - Navigations: network first, falling back to the cached shell.
// - Hashed build files (name-<hash>.js/.wasm/.css): cache first (their content never changes).
// - Other same-origin static files: network first, cache as fallback.
// - /api/ (HTTP and WebSocket) is never touched.
const CACHE = 'durable-chat-shell-v1';
const SHELL = ['/', '/boot.js', '/manifest.webmanifest', '/icon.svg', '/icon-192.png'];
const HASHED = /-[0-9a-f]{16,}(_bg)?\.(js|wasm|css)$/;

// The hashed files the current index.html references.
function assetsOf(html) {
  const found = new Set();
  for (const m of html.matchAll(/(?:href|src|data-js|data-wasm)="([^"]+)"/g)) {
    const url = new URL(m[1], self.location.origin);
    if (url.origin === self.location.origin && HASHED.test(url.pathname)) found.add(url.pathname);
  }
  return [...found];
}

async function cacheShell() {
  const cache = await caches.open(CACHE);
  const res = await fetch('/', { cache: 'no-cache' });
  if (!res.ok) return;
  const html = await res.clone().text();
  await cache.put('/', res);
  await cache.addAll([...SHELL.slice(1), ...assetsOf(html)]);
  // Forget hashed files from older builds.
  const keep = new Set(assetsOf(html));
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname;
    if (HASHED.test(path) && !keep.has(path)) await cache.delete(req);
  }
}

self.addEventListener('install', (event) => {
  event.waitUntil(cacheShell().catch(() => {}).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith('/api/')) return;

  if (req.mode === 'navigate') {
    event.respondWith((async () => {
      try {
        const res = await fetch(req);
        if (res.ok) {
          const copy = res.clone();
          event.waitUntil(caches.open(CACHE).then((c) => c.put('/', copy)).then(() => cacheShell()).catch(() => {}));
        }
        return res;
      } catch (err) {
        const cached = await caches.match('/');
        if (cached) return cached;
        throw err;
      }
    })());
    return;
  }

  if (HASHED.test(url.pathname)) {
    event.respondWith((async () => {
      const cached = await caches.match(req);
      if (cached) return cached;
      const res = await fetch(req);
      if (res.ok) {
        const copy = res.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(req, copy)));
      }
      return res;
    })());
    return;
  }

  event.respondWith((async () => {
    try {
      const res = await fetch(req);
      if (res.ok) {
        const copy = res.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(req, copy)));
      }
      return res;
    } catch (err) {
      const cached = await caches.match(req);
      if (cached) return cached;
      throw err;
    }
  })());
});
