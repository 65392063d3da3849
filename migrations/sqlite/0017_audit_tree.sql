-- The audit entries as the leaves of an RFC 6962 Merkle tree (collector/src/audit/): the
-- head of every complete subtree, kept as the entries are appended (the node at `level`
-- and `idx` heads leaves idx·2^level .. (idx+1)·2^level − 1; level 0 holds the leaf
-- hashes), so any proof takes O(log n) reads. Hashes only: no subject data. Append-only.
CREATE TABLE audit_tree (
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;

-- Signed checkpoints: C2SP signed notes of (origin, tree size, root). Append-only.
CREATE TABLE audit_checkpoints (
    size         BIGINT PRIMARY KEY,
    root         TEXT NOT NULL,
    signed_at_ms BIGINT NOT NULL,
    note         TEXT NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;

-- Every key that has signed checkpoints (its verifier key, public), so checkpoints
-- signed before a rotation still verify.
CREATE TABLE audit_public_keys (
    vkey          TEXT PRIMARY KEY,
    first_used_ms BIGINT NOT NULL
);
