-- Poros hub schema, migration 9: the mark of a restore.

-- Written by `poros-hub resync` after the database was brought back to an earlier point (a
-- point-in-time recovery, a dump restored): every hub instance reads it at start and asks
-- each agent at connect to submit again what the hub accepted from `snapshot_ms` on (less a
-- margin). `epoch` names the restore, so an agent does it once per restore. One row at most.
CREATE TABLE recovery_point (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch bigint NOT NULL CHECK (epoch <> 0),
    snapshot_ms bigint NOT NULL CHECK (snapshot_ms >= 0)
);
