-- Poros hub schema, migration 6: connections and paper-only counts (`stats.rs` in redb);
-- the counts themselves are stat_deltas/stat_totals of migration 1.
-- Text keys are compared byte by byte (COLLATE "C"), as the redb keys are.

-- Agencies seen (connected) in a period (`D2026-11-22`, `M2026-11`, `Y2026`).
CREATE TABLE seen (
    period text COLLATE "C" NOT NULL,
    agency text COLLATE "C" NOT NULL,
    PRIMARY KEY (period, agency)
);

-- An agency's paper-only counts for a month (`YYYY-MM`), the latest report replacing an
-- earlier one; `record` is the postcard `PaperCount` (the counts and the signed evidence).
CREATE TABLE paper_reports (
    month text COLLATE "C" NOT NULL,
    agency text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (month, agency)
);

-- Reports read the statistics of a few periods (and perhaps one scope) at a time: the
-- deltas not yet rolled up are found by key, not by scanning them all.
CREATE INDEX stat_deltas_by_key ON stat_deltas (period, scope);
