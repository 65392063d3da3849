-- Recommenders (collector/src/recommend/): each trained version of each named
-- recommender of a source (`SOURCE/NAME`), whole (the item vocabulary and the model:
-- item-kNN neighbours, ALS item factors, or popularity; JSON), with its spec and a report
-- of its training (users, items, interactions, held-out metrics beside popularity's and
-- the active version's). The same columns as segment_models, kept the same way
-- (collector/src/versions.rs). Item factors and neighbour lists are fitted over many
-- users and name no one: not subject data (no user factors are stored; a user is folded
-- in from their current history when served).
CREATE TABLE recommendation_models (
    name           TEXT NOT NULL,
    version        BIGINT NOT NULL,
    status         TEXT NOT NULL,
    spec           TEXT NOT NULL,
    model          TEXT NOT NULL,
    report         TEXT NOT NULL,
    trained_at_ms  BIGINT NOT NULL,
    promoted_at_ms BIGINT,
    PRIMARY KEY (name, version)
);
-- The items a source recommends: attributes (tags for content-based models, the
-- countries and devices an item is for) and whether it may be shown (unpublished or
-- out of stock: not). Not subject data.
CREATE TABLE catalog_items (
    source_id     TEXT NOT NULL,
    item          TEXT NOT NULL,
    attributes    TEXT NOT NULL,
    available     BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source_id, item)
);
-- Online feedback (collector/src/recommend/feedback.rs): impressions, clicks and
-- conversions of each recommender version, counted from the feed's events that carry
-- a list's rec_id. Counts only: not subject data.
CREATE TABLE recommendation_feedback (
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    impressions   BIGINT NOT NULL,
    clicks        BIGINT NOT NULL,
    conversions   BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
