-- Poros hub schema, migration 2: the registry (nodes, enrolment tokens, the audit log,
-- revoked and superseded serials, monitor credentials); see pg/registry.rs.
--
-- Each table keeps the whole record as postcard bytes (`record`, decoded by the same
-- decoders as the redb store's), keyed by real columns. Text keys are COLLATE "C" so that
-- their order is byte order, the order the redb store lists them in, whatever the
-- database's locale.

-- agency → NodeRecord. `state` and `parent` repeat the record's fields for operators'
-- queries; the record is what the hub reads.
CREATE TABLE nodes (
    agency text COLLATE "C" PRIMARY KEY,
    state text NOT NULL,
    parent text COLLATE "C",
    record bytea NOT NULL
);

-- SHA-256 of the token's secret → TokenRecord (the secret itself is not a key).
CREATE TABLE enrolment_tokens (
    secret_sha256 bytea PRIMARY KEY,
    agency text COLLATE "C" NOT NULL,
    used_ms bigint,
    record bytea NOT NULL
);

-- The audit log in sequence order (the cursor of the audit pages). Records are appended
-- one transaction at a time (a transaction-scoped advisory lock around the insert), so a
-- sequence number becomes visible only after every smaller one: a reader paging by cursor
-- never passes over a record committed later.
CREATE TABLE audit (
    seq bigserial PRIMARY KEY,
    agency text COLLATE "C",
    time_ms bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX audit_by_agency ON audit (agency, seq) WHERE agency IS NOT NULL;

-- Revoked certificate serials (hex, as issued) → RevokedSerial.
CREATE TABLE revoked_serials (
    serial text COLLATE "C" PRIMARY KEY,
    agency text COLLATE "C" NOT NULL,
    record bytea NOT NULL
);

-- Serials retired by renewal (CRL reason `superseded`) → RevokedSerial.
CREATE TABLE superseded_serials (
    serial text COLLATE "C" PRIMARY KEY,
    agency text COLLATE "C" NOT NULL,
    record bytea NOT NULL
);

-- Monitor credentials by name → MonitorRecord.
CREATE TABLE monitor_credentials (
    name text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);
