-- Settings saved on the admin's settings page (issue 12): each value overrides the Worker var or
-- secret of the same name. `value` is sealed, never plain text: `v1.<nonce>.<ciphertext+tag>`,
-- AES-256-GCM under the Worker secret SETTINGS_KEY (which is never stored here), a random
-- 96-bit nonce per value, and the name as additional data, so a value copied onto another
-- row does not open. `updated_by` is the admin's display name (who changed what, and when, is
-- also in audit_log; the value never is).
-- `expires_at` is set only on SESSION_SECRET_PREVIOUS: the session key a save replaced, which
-- keeps verifying existing sessions until then (7 days).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    expires_at INTEGER
);
