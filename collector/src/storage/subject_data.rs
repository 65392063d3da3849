//! The one list of tables that hold subject data. Erasure deletes from each, retention
//! ages each out, and subject access answers a section for each (a test checks that the
//! answer has every section). A test also reads both schemas and fails when a table with
//! a subject column is not listed here, so a table added later (profiles, assignments,
//! recommendation logs) cannot be forgotten.
use crate::{config::Config, storage::Backend};

/// How a table's rows expire.
#[derive(Debug, Clone, Copy)]
pub enum Expiry {
    /// `received_at_ms` older than this many days.
    Received(fn(&Config) -> u32),
    /// Audit data: its chain entry's `at_ms` older than this many days (the chained hash
    /// stays, so the chain keeps verifying).
    AuditEntry(fn(&Config) -> u32),
}

/// How erasure finds a subject's rows in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Any of `subject_columns` holds one of the subject's pseudonyms.
    Columns,
    /// Through the events' subject index (`subject_index::events_of`).
    EventsIndex,
    /// Not erased: the erasure notices themselves, written by erasure so that the feed's
    /// consumers delete what they derived. Access shows them; retention removes them.
    ErasureNotice,
}

/// A table holding subject data.
#[derive(Debug, Clone, Copy)]
pub struct SubjectTable {
    pub table: &'static str,
    /// What the erasure summary and the retention sweep call it.
    pub name: &'static str,
    /// The field of the subject access answer that carries its rows.
    pub access_section: &'static str,
    /// The columns that hold a subject's identity.
    pub subject_columns: &'static [&'static str],
    /// How erasure finds a subject's rows.
    pub lookup: Lookup,
    /// The columns naming one row, for deletes a batch at a time.
    pub key: &'static [&'static str],
    pub expiry: Expiry,
}

/// Every table with subject data, in the order erasure empties them: consent first, so
/// nothing new of the subject is accepted while the rest goes.
pub const SUBJECT_TABLES: &[SubjectTable] = &[
    SubjectTable {
        table: "consent_records",
        name: "consentRecords",
        access_section: "consent",
        subject_columns: &["subject", "user_id"],
        lookup: Lookup::Columns,
        key: &["source_id", "consent_id"],
        expiry: Expiry::Received(|c| c.consent_retention_days),
    },
    SubjectTable {
        table: "events",
        name: "events",
        access_section: "events",
        subject_columns: &["subject", "subject_key", "anonymous_id", "user_id"],
        lookup: Lookup::EventsIndex,
        key: &["source_id", "message_id"],
        expiry: Expiry::Received(|c| c.event_retention_days),
    },
    SubjectTable {
        table: "dead_letters",
        name: "deadLetters",
        access_section: "refusedEvents",
        subject_columns: &["subject"],
        lookup: Lookup::Columns,
        key: &["id"],
        expiry: Expiry::Received(|c| c.dead_letter_retention_days),
    },
    SubjectTable {
        table: "audit_data",
        name: "auditData",
        access_section: "auditEntries",
        subject_columns: &["subject"],
        lookup: Lookup::Columns,
        key: &["seq"],
        expiry: Expiry::AuditEntry(|c| c.audit_retention_days),
    },
    SubjectTable {
        table: "profile_events",
        name: "profileEvents",
        access_section: "profiles",
        subject_columns: &["subject", "origin_subject"],
        lookup: Lookup::Columns,
        key: &["source_id", "subject", "at_ms", "message_id"],
        expiry: Expiry::Received(|c| c.event_retention_days),
    },
    SubjectTable {
        table: "audience_members",
        name: "audienceMembers",
        access_section: "audienceMemberships",
        subject_columns: &["subject"],
        lookup: Lookup::Columns,
        key: &["audience", "source_id", "subject"],
        expiry: Expiry::Received(|c| c.event_retention_days),
    },
    SubjectTable {
        table: "audience_changes",
        name: "audienceChanges",
        access_section: "audienceChanges",
        subject_columns: &["subject"],
        lookup: Lookup::Columns,
        key: &["audience", "source_id", "at_ms", "subject", "entered"],
        expiry: Expiry::Received(|c| c.event_retention_days),
    },
    SubjectTable {
        table: "identity_links",
        name: "identityLinks",
        access_section: "identityLinks",
        subject_columns: &["previous_id", "subject"],
        lookup: Lookup::Columns,
        key: &["source_id", "previous_id"],
        expiry: Expiry::Received(|c| c.event_retention_days),
    },
    SubjectTable {
        table: "duplicate_proposals",
        name: "duplicateProposals",
        access_section: "duplicateProposals",
        subject_columns: &["subject", "previous_id"],
        lookup: Lookup::Columns,
        key: &["source_id", "subject", "previous_id"],
        expiry: Expiry::Received(|c| c.event_retention_days),
    },
    SubjectTable {
        table: "experiment_assignments",
        name: "experimentAssignments",
        access_section: "experimentAssignments",
        subject_columns: &["subject"],
        lookup: Lookup::Columns,
        key: &["experiment", "source_id", "subject"],
        expiry: Expiry::Received(|c| c.event_retention_days),
    },
    SubjectTable {
        table: "experiment_values",
        name: "experimentValues",
        access_section: "experimentValues",
        subject_columns: &["subject"],
        lookup: Lookup::Columns,
        key: &["experiment", "source_id", "subject", "metric"],
        expiry: Expiry::Received(|c| c.event_retention_days),
    },
    SubjectTable {
        table: "erasure_notices",
        name: "erasureNotices",
        access_section: "erasureNotices",
        subject_columns: &["subject"],
        lookup: Lookup::ErasureNotice,
        key: &["seq"],
        expiry: Expiry::Received(|c| c.erasure_notice_retention_days),
    },
];

/// Tables with subject columns that erasure and retention reach another way, and how.
pub const NOT_SUBJECT_DATA: &[(&str, &str)] = &[(
    "event_subjects",
    "SQLite's subject index (64-bit keys of pseudonyms pointing at events rows): a trigger deletes an entry with its event (migration sqlite/0004)",
)];

/// Column names that hold a subject's identity (a pseudonym, or 64 bits of one) wherever
/// they appear.
pub const SUBJECT_COLUMN_NAMES: &[&str] = &[
    "subject",
    "subject_key",
    "user_id",
    "anonymous_id",
    "previous_id",
    "origin_subject",
];

impl SubjectTable {
    /// `a` or `(a, b)`: the key as the left side of an `IN`.
    fn key_tuple(&self) -> String {
        match self.key {
            [one] => (*one).to_owned(),
            many => format!("({})", many.join(", ")),
        }
    }

    /// Deletes a batch of the subject's rows. Binds: the subject's `n` pseudonyms as
    /// `$1..$n`, their subject keys as `$n+1..$2n` (used by the events index), then the
    /// batch size.
    /// None for the erasure notices, which erasure writes rather than deletes.
    pub fn erase_sql(&self, backend: Backend, n: usize) -> Option<String> {
        let of_subject = match self.lookup {
            Lookup::ErasureNotice => return None,
            Lookup::EventsIndex => super::subject_index::events_of(backend, n),
            Lookup::Columns => {
                let list = super::numbered(1, n);
                self.subject_columns
                    .iter()
                    .map(|c| format!("{c} IN ({list})"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            }
        };
        Some(format!(
            "DELETE FROM {t} WHERE {k} IN (SELECT {cols} FROM {t} WHERE {of_subject} LIMIT ${limit})",
            t = self.table,
            k = self.key_tuple(),
            cols = self.key.join(", "),
            limit = 2 * n + 1
        ))
    }

    /// Deletes a batch of expired rows. Binds: the oldest time kept (Unix ms), then the
    /// batch size.
    pub fn expire_sql(&self) -> String {
        let (t, k, cols) = (self.table, self.key_tuple(), self.key.join(", "));
        match self.expiry {
            Expiry::Received(_) => format!(
                "DELETE FROM {t} WHERE {k} IN (SELECT {cols} FROM {t} WHERE received_at_ms < $1 LIMIT $2)"
            ),
            Expiry::AuditEntry(_) => format!(
                "DELETE FROM {t} WHERE {k} IN
                 (SELECT l.seq FROM audit_log l JOIN {t} d ON d.seq = l.seq WHERE l.at_ms < $1 LIMIT $2)"
            ),
        }
    }

    /// Days this table's rows are kept under `config`.
    pub fn retention_days(&self, config: &Config) -> u32 {
        match self.expiry {
            Expiry::Received(days) | Expiry::AuditEntry(days) => days(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_key_and_the_subject_columns() {
        let dead = SUBJECT_TABLES
            .iter()
            .find(|t| t.table == "dead_letters")
            .unwrap();
        assert_eq!(
            dead.erase_sql(Backend::Postgres, 2).unwrap(),
            "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE subject IN ($1,$2) LIMIT $5)"
        );
        let consent = SUBJECT_TABLES
            .iter()
            .find(|t| t.table == "consent_records")
            .unwrap();
        assert!(consent
            .erase_sql(Backend::Sqlite, 1)
            .unwrap()
            .starts_with("DELETE FROM consent_records WHERE (source_id, consent_id) IN (SELECT source_id, consent_id FROM consent_records WHERE subject IN ($1) OR user_id IN ($1) LIMIT $3)"));
        assert!(consent
            .expire_sql()
            .contains("received_at_ms < $1 LIMIT $2"));
        assert_eq!(consent.retention_days(&Config::default()), 5 * 365);
    }
}
