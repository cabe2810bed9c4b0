-- Link previews (issue 11): what a linked page says about itself, fetched once by the Worker
-- (`GET /api/preview?url=`) and shared by every reader, so a link in a busy room costs the
-- linked site one request a day, not one per reader. A failure is kept for a few minutes too,
-- so a dead link is not fetched again by everyone who scrolls past it.
CREATE TABLE link_previews (
    -- The page's URL as the WHATWG parser writes it (so `HTTP://Example.com` is `http://example.com/`).
    url TEXT PRIMARY KEY,
    -- When it was fetched (ms since the epoch): fresh for 24 h when it answered, 10 min when not.
    fetched_at INTEGER NOT NULL,
    -- The answer: 200 a preview, 204 nothing to show, else the status of the error answered.
    status INTEGER NOT NULL,
    -- 200: the page's preview (JSON, its image as an absolute URL); an error: its code and
    -- message (JSON); 204: nothing.
    body TEXT,
    -- 200: the page's image URL, the only kind of URL `GET /api/preview/image` fetches (it is
    -- never an open proxy). A column of its own, indexed, so that check is one lookup.
    image TEXT
);

CREATE INDEX link_previews_by_image ON link_previews (image) WHERE image IS NOT NULL;
CREATE INDEX link_previews_by_age ON link_previews (fetched_at);
