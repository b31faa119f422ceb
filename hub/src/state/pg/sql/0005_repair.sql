-- Poros hub schema, migration 5: bodies found damaged or missing, the deliveries they hold,
-- and the re-upload requests waiting for each sender (`bodies.rs` in redb).
-- Text keys are compared byte by byte (COLLATE "C"), as the redb keys are.

-- Held deliveries themselves (`held`) are created by migration 3, which the queue reads need;
-- the index here finds them by document.
CREATE INDEX held_by_doc ON held (doc);

-- A body found missing or damaged, waiting for its sender to upload it again. `docs` are the
-- documents using it whose deliveries are held, in the order found (the first one's sender
-- was asked).
CREATE TABLE damaged_bodies (
    digest bytea PRIMARY KEY,
    found_ms bigint NOT NULL,
    what text NOT NULL,
    docs uuid[] NOT NULL,
    attempts integer NOT NULL DEFAULT 0
);

-- One re-upload request per damaged body, read by the sender's pusher like the relays.
CREATE TABLE repairs (
    sender text COLLATE "C" NOT NULL,
    doc uuid NOT NULL REFERENCES docs (id),
    digest bytea NOT NULL,
    PRIMARY KEY (sender, doc)
);

-- The scrub looks up the documents using a damaged body.
CREATE INDEX docs_by_body ON docs (body_sha256);
