-- Poros hub schema, migration 8: what several hub instances share beyond the state.

-- The lease each instance holds on the delivery and relay work of an agency connected to it
-- (see hub/src/coordination.rs): claimed when the agency connects, renewed every few seconds,
-- taken over by another instance once it has run out.
CREATE TABLE agency_leases (
    agency text PRIMARY KEY,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
);
