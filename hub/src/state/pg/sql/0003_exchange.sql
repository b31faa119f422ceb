-- Poros hub schema, migration 3: the exchange (documents, deliveries, bodies in the database,
-- poros/1 relays, body retention); see pg/exchange.rs and pg/retention.rs.
--
-- Keys are real columns (uuid document IDs, agency codes as text, digests as bytea, Unix ms
-- as bigint); the rest of a record is postcard bytes (`record`), decoded by the same types
-- as the redb store's. Agency columns are COLLATE "C": their order is byte order, the order
-- the redb store lists them in, whatever the database's locale.

-- doc ID → DocRecord (envelope, acceptance, body location). Shared: the repair area reads it.
CREATE TABLE docs (
    id uuid PRIMARY KEY,
    sender text COLLATE "C" NOT NULL,
    accepted_ms bigint NOT NULL,
    body_sha256 bytea NOT NULL,
    body_len bigint NOT NULL,
    record bytea NOT NULL
);

-- (doc, recipient) → DeliveryRecord. `pending` repeats "the record's state is Pending";
-- `accepted_ms` is when the delivery fell due (the document's acceptance, or for a recipient
-- an update added, the update's); `answered_ms` when it ended. The pending rows are the
-- queues (redb `queue`, in document order per recipient) and the expiry index (redb
-- `expiry`, in age order), without a table of their own. Shared: the repair area reads it.
CREATE TABLE deliveries (
    doc uuid NOT NULL REFERENCES docs (id),
    recipient text COLLATE "C" NOT NULL,
    pending boolean NOT NULL,
    accepted_ms bigint NOT NULL,
    answered_ms bigint,
    record bytea NOT NULL,
    PRIMARY KEY (doc, recipient)
);
CREATE INDEX deliveries_queue ON deliveries (recipient, doc) WHERE pending;
CREATE INDEX deliveries_expiry ON deliveries (accepted_ms, doc, recipient) WHERE pending;

-- Bodies up to INLINE_MAX, by digest; larger ones are files. Shared with the repair area.
CREATE TABLE inline_bodies (
    digest bytea PRIMARY KEY,
    body bytea NOT NULL
);

-- Documents using each body (a body is released when the last goes). Shared.
CREATE TABLE body_refs (
    digest bytea PRIMARY KEY,
    refs bigint NOT NULL
);

-- Pending deliveries taken out of their recipient's queue while the document's body is
-- repaired (redb `held`): still pending, still expiring, not offered. Written by the repair
-- area (hold, repair, loss); an answer that expires or loses a delivery removes its row; the
-- queue reads skip these.
CREATE TABLE held (
    recipient text COLLATE "C" NOT NULL,
    doc uuid NOT NULL,
    PRIMARY KEY (recipient, doc)
);

-- poros/1 answers not yet acknowledged by the document's sender: (sender, doc, recipient) →
-- RelayItem (postcard).
CREATE TABLE relays (
    sender text COLLATE "C" NOT NULL,
    doc uuid NOT NULL,
    recipient text COLLATE "C" NOT NULL,
    item bytea NOT NULL,
    PRIMARY KEY (sender, doc, recipient)
);

-- Documents whose deliveries have all ended, by the time the last one did: their bodies are
-- released once the retention has passed.
CREATE TABLE retention (
    answered_ms bigint NOT NULL,
    doc uuid NOT NULL,
    PRIMARY KEY (answered_ms, doc)
);
