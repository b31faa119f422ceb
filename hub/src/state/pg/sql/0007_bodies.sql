-- Poros hub schema, migration 7: large bodies (over 64 KiB) in the database, chunked.
--
-- A body is uploaded from the hub's local staging file in chunks of 256 KiB, a few chunks
-- per transaction, and only then marked complete: a body whose row is not complete is never
-- read as whole (an interrupted upload). Small bodies stay with their document
-- (`inline_bodies`). Times are Unix ms by the database's clock (one clock for every hub).

CREATE TABLE stored_bodies (
    digest bytea PRIMARY KEY,
    -- The body's length in bytes.
    len bigint NOT NULL,
    -- Every chunk is committed and the whole was checked against the digest.
    complete boolean NOT NULL,
    -- When the first upload began.
    created_at bigint NOT NULL,
    -- When an upload last wrote or claimed the body (re-used identical content claims it
    -- again): removal without a reference waits the orphan grace after this, so a document
    -- about to reference the body commits first.
    claimed_at bigint NOT NULL
);
-- The orphan sweep walks bodies by age.
CREATE INDEX stored_bodies_claimed ON stored_bodies (claimed_at, digest);

CREATE TABLE body_chunks (
    digest bytea NOT NULL,
    seq integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (digest, seq)
);
-- Chunks are stored out of line as they are, never compressed (bodies are mostly compressed
-- or encrypted already; compressing 256 KiB pieces would only cost CPU on both sides).
ALTER TABLE body_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
