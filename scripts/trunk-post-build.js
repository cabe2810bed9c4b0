// Trunk's post-build hook (Trunk.toml), run with node in Trunk's staging directory before it
// becomes dist/:
// 1. The chat and full bundles (app/index.html's rust links built as "workers", so Trunk writes
//    no tag for them and does not hash their names) get hashed file names, written into
//    boot.js's tag as data-chat-js, data-chat-wasm, data-full-js and data-full-wasm;
//    assets/boot.js loads each when the page asks for it (ARCHITECTURE.md, "The app's bundles").
// 2. Release builds: the wasm-bindgen JS glue files and the loader are minified with esbuild
//    (npm, node_modules; its JS API, so nothing is downloaded): Trunk's own minifier (minify-js
//    0.5) cannot parse `export { __wbg_init as default }`. The welcome glue's integrity (sha384)
//    in index.html's modulepreload is updated to the minified bytes. The files keep their names
//    (Trunk hashed the unminified glue, which changes whenever the minified one does).
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const dir = process.env.TRUNK_STAGING_DIR;
const html = path.join(dir, 'index.html');
const sri = (bytes) => 'sha384-' + crypto.createHash('sha384').update(bytes).digest('base64');
let page = fs.readFileSync(html, 'utf8');

function one(pattern, what) {
  const found = fs.readdirSync(dir).filter((f) => pattern.test(f));
  if (found.length !== 1) throw new Error(`expected one ${what} in ${dir}: ${found}`);
  return found[0];
}

const welcomeJs = one(/^welcome-[0-9a-f]+\.js$/, 'welcome-<hash>.js');

// A bundle built as a worker: `<bin>.js` and `<bin>_bg.wasm`, renamed with the wasm's hash, so
// they are cached like every hashed file and a glue file never meets another build's wasm.
function hashed(bin) {
  const wasm = one(new RegExp(`^${bin}_bg\\.wasm$`), `${bin}_bg.wasm`);
  const hash = crypto
    .createHash('sha256')
    .update(fs.readFileSync(path.join(dir, wasm)))
    .digest('hex')
    .slice(0, 16);
  const names = { js: `${bin}-${hash}.js`, wasm: `${bin}-${hash}_bg.wasm` };
  fs.renameSync(path.join(dir, one(new RegExp(`^${bin}\\.js$`), `${bin}.js`)), path.join(dir, names.js));
  fs.renameSync(path.join(dir, wasm), path.join(dir, names.wasm));
  return names;
}
const chat = hashed('app');
const full = hashed('full');

// The loader's tag is the one with data-js (pattern_script in Trunk.toml); release builds have
// minified the page by now, so its attributes may be reordered and unquoted.
const tag = /<script(?=[^>]*\sdata-js=)/g;
if ((page.match(tag) || []).length !== 1) throw new Error('index.html has no single boot.js tag');
page = page.replace(
  tag,
  `<script data-chat-js="/${chat.js}" data-chat-wasm="/${chat.wasm}"` +
    ` data-full-js="/${full.js}" data-full-wasm="/${full.wasm}"`,
);

if (process.env.TRUNK_PROFILE === 'release') {
  const minify = (source) =>
    require('esbuild').transformSync(source, { minify: true, format: 'esm', legalComments: 'none' })
      .code;
  for (const glue of [welcomeJs, chat.js, full.js]) {
    const file = path.join(dir, glue);
    const before = fs.readFileSync(file);
    const after = minify(before.toString('utf8'));
    if (glue === welcomeJs) {
      if (!page.includes(sri(before))) throw new Error('index.html has no integrity for ' + glue);
      page = page.split(sri(before)).join(sri(after));
    }
    fs.writeFileSync(file, after);
    console.log(`[hook] minified ${glue}: ${before.length} -> ${Buffer.byteLength(after)} bytes`);
  }
  // The loader is part of every first download; its comments are for the repository.
  const boot = path.join(dir, 'boot.js');
  const source = fs.readFileSync(boot, 'utf8');
  const small = minify(source);
  fs.writeFileSync(boot, small);
  console.log(`[hook] minified boot.js: ${source.length} -> ${Buffer.byteLength(small)} bytes`);
}
fs.writeFileSync(html, page);
console.log(`[hook] chat bundle /${chat.wasm}, full bundle /${full.wasm}`);
