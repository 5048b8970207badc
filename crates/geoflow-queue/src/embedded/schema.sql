-- Schema of the embedded queue (PRAGMA user_version = 1). Times are milliseconds since the
-- Unix epoch, read from the system clock of whichever process writes them.

-- Messages waiting or in flight. A message is visible when visible_at_ms <= now; receiving
-- one sets visible_at_ms to now + the visibility timeout and gives it a new receipt.
CREATE TABLE IF NOT EXISTS messages (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT    NOT NULL UNIQUE,
    body                 TEXT    NOT NULL,
    sent_at_ms           INTEGER NOT NULL,
    visible_at_ms        INTEGER NOT NULL,
    receive_count        INTEGER NOT NULL DEFAULT 0,
    first_received_at_ms INTEGER,
    -- Token of the latest receipt; NULL until the first receive.
    receipt              TEXT
);

-- Receive scans visible messages oldest first and stops at the batch size.
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (visible_at_ms, seq);

-- Messages received more than the maximum receive count, kept for operators.
CREATE TABLE IF NOT EXISTS dead_letters (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT    NOT NULL UNIQUE,
    body                 TEXT    NOT NULL,
    sent_at_ms           INTEGER NOT NULL,
    receive_count        INTEGER NOT NULL,
    first_received_at_ms INTEGER,
    dead_lettered_at_ms  INTEGER NOT NULL
);
