-- Poros hub schema, migration 4: the statement path (every accepted statement in acceptance
-- order, what the rules know of each document, the per-addressee relay queues, the
-- deliveries updates added); see pg/statements.rs.

-- Acceptance sequence numbers: global and increasing, with gaps where a transaction that
-- took one did not commit. Two statements about one document always write its rule state
-- (doc_states), so they never commit concurrently: within a document, the order of numbers
-- is the order of commits.
CREATE SEQUENCE statement_seq;

-- seq → StoredStatement (postcard: the signed statement as received, when accepted).
CREATE TABLE statements (
    seq bigint PRIMARY KEY DEFAULT nextval('statement_seq'),
    doc uuid NOT NULL,
    accepted_ms bigint NOT NULL,
    record bytea NOT NULL
);
ALTER SEQUENCE statement_seq OWNED BY statements.seq;
-- A document's history, in acceptance order.
CREATE INDEX statements_by_doc ON statements (doc, seq);

-- Statements not yet acknowledged by an addressee: (addressee, seq), with the document and
-- the maker (an agency code or `hub`) so a scan can gate them without decoding statements.
CREATE TABLE statement_relays (
    addressee text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    doc uuid NOT NULL,
    from_party text COLLATE "C" NOT NULL,
    PRIMARY KEY (addressee, seq)
);

-- Payload digest → seq, of the statements agencies send on their own: a resubmission is
-- stored once.
CREATE TABLE statement_digests (
    digest bytea PRIMARY KEY,
    seq bigint NOT NULL
);

-- doc → DocState (postcard): what the rules know of the document.
CREATE TABLE doc_states (
    doc uuid PRIMARY KEY,
    state bytea NOT NULL
);

-- Deliveries an update created: which statement, and when they fell due (their delivery rows
-- are in `deliveries` like any other).
CREATE TABLE added_recipients (
    doc uuid NOT NULL,
    recipient text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    added_ms bigint NOT NULL,
    PRIMARY KEY (doc, recipient)
);

-- Accepted statements by kind label (those agencies make on their own), as deltas inserted
-- by each accepting transaction and totals they are folded into, like the counters.
CREATE TABLE statement_kind_deltas (
    id bigserial PRIMARY KEY,
    label text COLLATE "C" NOT NULL,
    delta bigint NOT NULL
);
CREATE TABLE statement_kind_totals (
    label text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL
);
