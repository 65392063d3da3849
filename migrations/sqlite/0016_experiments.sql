-- Experiments (collector/src/experiments/): block types, content slots, flags and
-- experiments, each a JSON definition kept version by version (who, when, what changed:
-- the paths that differ from the version before). The newest version is in force; a
-- deletion is a version without a body; a rollback writes an old body as a new version.
-- Definitions name no one: not subject data.
CREATE TABLE experiment_definitions (
    kind    TEXT NOT NULL,
    name    TEXT NOT NULL,
    version BIGINT NOT NULL,
    body    TEXT,
    actor   TEXT NOT NULL,
    at_ms   BIGINT NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
);
-- Each subject's variant of each experiment, kept so it never moves (sticky, whatever
-- the weights become), and when a variant was first served to them (exposure; only
-- then are they counted). Subject data: erased with the subject, aged out, in access.
CREATE TABLE experiment_assignments (
    experiment     TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    variant        BIGINT NOT NULL,
    exposed_at_ms  BIGINT,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (experiment, source_id, subject)
);
-- Each exposed subject's value of each metric since exposure (1 per event for a rate,
-- the property summed otherwise), summed from the feed by the experiment-metrics
-- consumer, and the same metric over the 30 days before exposure (CUPED's covariate,
-- read from the subject's stored events when first exposed). Subject data, as above.
CREATE TABLE experiment_values (
    experiment     TEXT NOT NULL,
    source_id      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    metric         TEXT NOT NULL,
    value          DOUBLE PRECISION NOT NULL,
    pre_value      DOUBLE PRECISION NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (experiment, source_id, subject, metric)
);
