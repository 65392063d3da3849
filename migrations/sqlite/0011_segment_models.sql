-- Segmentation models (collector/src/segments/models.rs): each trained version of each
-- named segmentation, whole (the features it reads, the scaler fitted on them, the
-- k-means centroids: assent_segmentation::model::Model as JSON), with the spec it was
-- trained from and a report of its training (profiles read, excluded as sparse, outlying
-- or bot-like, silhouette). One version per segmentation is `active` and assigns
-- profiles; a new one not better than it stays a `candidate`; one replaced is `retired`
-- and can be brought back. Centroids are means over many profiles and name no one: not
-- subject data.
CREATE TABLE segment_models (
    segmentation   TEXT NOT NULL,
    version        BIGINT NOT NULL,
    status         TEXT NOT NULL,
    spec           TEXT NOT NULL,
    model          TEXT NOT NULL,
    report         TEXT NOT NULL,
    trained_at_ms  BIGINT NOT NULL,
    promoted_at_ms BIGINT,
    PRIMARY KEY (segmentation, version)
);
