-- Poros hub schema, migration 1: what every operation shares.

-- One row per committed write transaction, so a commit whose outcome was lost with its
-- connection can be looked up (see pg/mod.rs). Old rows are removed by the sweeper.
CREATE TABLE poros_commits (
    id uuid PRIMARY KEY,
    op text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);

-- Operational counters (`counters` in redb): deltas inserted by the transactions that count
-- (no row is updated by every accept), folded into counter_totals by the roll-up.
CREATE TABLE counter_deltas (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    delta bigint NOT NULL
);
CREATE TABLE counter_totals (
    name text PRIMARY KEY,
    value bigint NOT NULL
);

-- Exact statistics (`stats` in redb): (period, scope, metric) → count, as deltas and totals
-- like the counters.
CREATE TABLE stat_deltas (
    id bigserial PRIMARY KEY,
    period text NOT NULL,
    scope text NOT NULL,
    metric text NOT NULL,
    delta bigint NOT NULL
);
CREATE TABLE stat_totals (
    period text NOT NULL,
    scope text NOT NULL,
    metric text NOT NULL,
    value bigint NOT NULL,
    PRIMARY KEY (period, scope, metric)
);
