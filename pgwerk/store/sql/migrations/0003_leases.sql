-- Leases: leadership that does not depend on a session. Behind PgBouncer in transaction
-- mode a session advisory lock is taken on whichever server connection ran the statement
-- and outlives the client that took it; a lease row with an expiry is renewed by its
-- holder and taken over by another process once it has expired.

CREATE TABLE IF NOT EXISTS {leases} (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
