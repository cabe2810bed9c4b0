-- Guest sessions that were ended (signing out) before their cookie expired (issue 10 item 7).
-- A guest's cookie carries a random session id; a revoked id opens nothing even if a copy of
-- the cookie survives. Rows are pruned once the cookie would have expired anyway.
CREATE TABLE guest_revocations (
    sid TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX guest_revocations_by_expiry ON guest_revocations (expires_at);
