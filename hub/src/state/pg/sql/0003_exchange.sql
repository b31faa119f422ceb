-- Poros hub schema, migration 3: the exchange (documents, deliveries, bodies in the database,
-- poros/1 relays, body retention); see pg/exchange.rs and pg/retention.rs.
--
-- Keys are real columns (uuid document IDs, agency codes as text, digests as bytea, Unix ms
-- as bigint); the rest of a record is postcard bytes (`record`), decoded by the same types
-- as the redb store's. Agency columns are COLLATE "C": their order is byte order, the order
-- the redb store lists them in, whatever the database's locale.
--
-- Under SERIALIZABLE, B-tree reads lock index pages: a transaction that adds an entry to a
-- page another concurrent one read conflicts with it, and two that do so both ways cannot
-- both commit. Answers to neighbouring documents (v7 IDs are adjacent) read and write the
-- same pages, so the rows an answer changes are updated in place (HOT: no indexed column
-- changes, and the pages keep room for the new version, `fillfactor`), and what changes
-- membership of an index (the queue) is a row deleted, never an entry added.

-- doc ID → DocRecord (envelope, acceptance, body location). Shared: the repair area reads it.
CREATE TABLE docs (
    id uuid PRIMARY KEY,
    sender text COLLATE "C" NOT NULL,
    accepted_ms bigint NOT NULL,
    body_sha256 bytea NOT NULL,
    body_len bigint NOT NULL,
    record bytea NOT NULL
) WITH (fillfactor = 90);

-- (doc, recipient) → DeliveryRecord. `pending` repeats "the record's state is Pending";
-- `accepted_ms` is when the delivery fell due (the document's acceptance, or for a recipient
-- an update added, the update's); `answered_ms` when it ended. No index on `pending`: an
-- answer's update must stay in place (see above); the pending ones are in `queue`. Shared:
-- the repair area reads it.
CREATE TABLE deliveries (
    doc uuid NOT NULL,
    recipient text COLLATE "C" NOT NULL,
    pending boolean NOT NULL,
    accepted_ms bigint NOT NULL,
    answered_ms bigint,
    record bytea NOT NULL,
    PRIMARY KEY (doc, recipient)
) WITH (fillfactor = 50, toast_tuple_target = 128);
ALTER TABLE deliveries ALTER COLUMN record SET STORAGE EXTERNAL;

-- The pending deliveries (redb `queue` and `expiry`): a row per delivery not yet answered,
-- with when it fell due; removed by the answer that ends it. In document order per
-- recipient (the queues) and in age order (expiry, and the overdue counts). The rows
-- `held` names stay here (still pending, still expiring) but are not offered. Shared: the
-- repair area reads it.
CREATE TABLE queue (
    recipient text COLLATE "C" NOT NULL,
    doc uuid NOT NULL,
    due_ms bigint NOT NULL,
    PRIMARY KEY (recipient, doc)
);
CREATE INDEX queue_by_age ON queue (due_ms, doc, recipient);

-- Per document, its deliveries and how many have ended (redb `answered`, with the count it
-- is compared to): the last answer puts the document in `retention`. Apart from the
-- document's record, so an answer never rewrites it.
CREATE TABLE answered (
    doc uuid PRIMARY KEY,
    deliveries integer NOT NULL,
    answered integer NOT NULL
) WITH (fillfactor = 20);

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

-- Pending deliveries held back while the document's body is repaired (redb `held`): their
-- `queue` rows stay (still pending, still expiring) but are not offered or counted in the
-- queues. Written by the repair area (hold, repair, loss); an answer that expires or loses a
-- delivery removes its row.
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
