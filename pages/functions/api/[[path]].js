// Cloudflare Pages glue: the app in `dist/` is the Pages project's static site, and every
// `/api/*` request (routed here by `_routes.json`; everything else never runs a Function) goes
// to the Durable Chat Worker through the service binding `API` (pages/wrangler.toml).
//
// Pages Functions are JavaScript, hence this one small file; the API itself stays in Rust.
// The request is forwarded as it is, not rebuilt: method, headers (the session cookie),
// body, and a WebSocket upgrade (the Worker's 101 response carries the socket back), and its
// URL, which is the Pages origin the browser used. The Worker compares a page's `Origin` with
// the request URL's own origin, and sets its session cookie for it, so the site stays one
// origin and those checks hold unchanged.
export function onRequest({ request, env }) {
  return env.API.fetch(request);
}
