//! The collector's HTTP API, black-box, on SQLite and on PostgreSQL: the same suite runs
//! against both (`sqlite::name` and `postgres::name`).
mod experiments;
mod feed;
mod helpers;
mod proofs;
mod recommendations;
mod security;
mod segments;
mod suite;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::suite::$name(crate::helpers::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::suite::$name(crate::helpers::Backend::Postgres).await })*
        }
    };
}

on_both_backends!(
    a_batch_is_checked_event_by_event_and_consent_is_enforced,
    duplicates_are_stored_once,
    a_failing_write_fails_only_its_own_request,
    consent_in_the_same_batch_counts_and_time_matters,
    every_way_to_present_a_key_works_and_wrong_keys_fail,
    bad_input_gets_its_4xx_and_changes_nothing,
    identifiers_and_addresses_are_never_stored_raw,
    clock_skew_is_corrected_from_sent_at,
    consent_endpoints_record_and_return_the_current_state,
    the_audit_trail_exports_and_verifies_and_detects_tampering,
    the_audit_log_refuses_updates_and_deletes,
    subject_access_and_erasure_keep_the_chain_verifying,
    segment_consent_stamps_count_and_are_recorded,
    single_event_endpoints_take_the_type_from_the_path,
    health_readiness_metrics_and_openapi,
    cors_follows_the_source_allowed_origins,
    the_sdk_delivers_to_the_collector_end_to_end,
    retention_deletes_expired_events_in_batches,
    compacting_the_subject_index_keeps_every_event_findable,
    openapi_matches_the_router,
    rate_limits_answer_429_with_retry_after,
    pseudonym_keys_rotate_without_losing_subjects,
    expired_consent_and_audit_data_go_and_the_chain_still_verifies,
    every_consent_change_counts_at_once_on_every_collector,
    every_table_with_subject_data_is_registered,
    retention_follows_the_injected_clock,
);

mod proofs_sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receipts_exports_and_consistency_verify_offline() {
        crate::proofs::receipts_exports_and_consistency_verify_offline(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_signing_key_rotates_and_old_checkpoints_still_verify() {
        crate::proofs::the_signing_key_rotates_and_old_checkpoints_still_verify().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tamper_battery_is_caught_by_both_verifiers() {
        crate::proofs::the_tamper_battery_is_caught_by_both_verifiers().await
    }
}

mod proofs_postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_of_one_postgres_extend_one_log() {
        crate::proofs::replicas_of_one_postgres_extend_one_log().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receipts_exports_and_consistency_verify_offline() {
        crate::proofs::receipts_exports_and_consistency_verify_offline(
            crate::helpers::Backend::Postgres,
        )
        .await
    }
}

macro_rules! security_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod security_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::security::$name(crate::helpers::Backend::Sqlite).await })*
        }
        mod security_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::security::$name(crate::helpers::Backend::Postgres).await })*
        }
    };
}

security_on_both_backends!(
    consent_is_kept_apart_per_site,
    forged_future_dates_are_refused,
    control_characters_refuse_the_event_not_the_batch,
    dead_letters_keep_no_refused_data_and_are_subject_data,
    consent_floods_are_capped_and_rate_limited,
    keys_in_headers_are_checked_before_the_body,
    keys_are_digested_with_a_server_secret,
    access_pages_erasure_batches_and_verification_is_bounded,
    server_keys_read_their_own_scope_only,
);

macro_rules! feed_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod feed_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::feed::$name(crate::helpers::Backend::Sqlite).await })*
        }
        mod feed_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::feed::$name(crate::helpers::Backend::Postgres).await })*
        }
    };
}

macro_rules! segments_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod segments_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::segments::$name(crate::helpers::Backend::Sqlite).await })*
        }
        mod segments_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::segments::$name(crate::helpers::Backend::Postgres).await })*
        }
    };
}

mod recommendations_sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recommendations_follow_consent_history_and_the_catalogue() {
        crate::recommendations::recommendations_follow_consent_history_and_the_catalogue(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_recommendations_through_redis() {
        crate::recommendations::replicas_share_recommendations_through_redis(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }
}

mod experiments_sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn experiments_detect_what_is_there_and_flag_a_broken_split() {
        crate::experiments::experiments_detect_what_is_there_and_flag_a_broken_split(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }
}

mod experiments_rotation {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sdk_reads_flags_from_the_collector() {
        crate::experiments::the_sdk_reads_flags_from_the_collector(crate::helpers::Backend::Sqlite)
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sdk_reads_content_from_the_collector() {
        crate::experiments::the_sdk_reads_content_from_the_collector(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flag_switches_real_time_segmentation() {
        crate::experiments::a_flag_switches_real_time_segmentation(crate::helpers::Backend::Sqlite)
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flags_follow_their_rules_and_consent() {
        crate::experiments::flags_follow_their_rules_and_consent(crate::helpers::Backend::Sqlite)
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn country_rules_follow_a_maxmind_database() {
        crate::experiments::country_rules_follow_a_maxmind_database(crate::helpers::Backend::Sqlite)
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn served_variants_follow_the_published_vectors() {
        crate::experiments::served_variants_follow_the_published_vectors(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn assignments_survive_a_key_rotation() {
        crate::experiments::assignments_survive_a_key_rotation(crate::helpers::Backend::Sqlite)
            .await
    }
}

mod experiments_postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn experiments_detect_what_is_there_and_flag_a_broken_split() {
        crate::experiments::experiments_detect_what_is_there_and_flag_a_broken_split(
            crate::helpers::Backend::Postgres,
        )
        .await
    }
}

mod recommendations_groups {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn new_users_get_what_is_popular_in_their_segment_or_context_sqlite() {
        crate::recommendations::new_users_get_what_is_popular_in_their_segment_or_context(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn new_users_get_what_is_popular_in_their_segment_or_context_postgres() {
        crate::recommendations::new_users_get_what_is_popular_in_their_segment_or_context(
            crate::helpers::Backend::Postgres,
        )
        .await
    }
}

mod recommendations_content {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn experiments_choose_a_recommenders_version() {
        crate::recommendations::experiments_choose_a_recommenders_version(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_catalogue_takes_a_pruned_ease() {
        crate::recommendations::a_large_catalogue_takes_a_pruned_ease(
            crate::helpers::Backend::Sqlite,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn content_recommenders_use_item_tags() {
        crate::recommendations::content_recommenders_use_item_tags(crate::helpers::Backend::Sqlite)
            .await
    }
}

mod recommendations_metrics {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drift_and_the_cache_show_in_metrics() {
        crate::recommendations::drift_and_the_cache_show_in_metrics(crate::helpers::Backend::Sqlite)
            .await
    }
}

mod recommendations_postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recommendations_follow_consent_history_and_the_catalogue() {
        crate::recommendations::recommendations_follow_consent_history_and_the_catalogue(
            crate::helpers::Backend::Postgres,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_recommendations_through_redis() {
        crate::recommendations::replicas_share_recommendations_through_redis(
            crate::helpers::Backend::Postgres,
        )
        .await
    }
}

segments_on_both_backends!(
    profiles_follow_personalization_and_go_on_withdrawal_and_erasure,
    audiences_are_checked_stored_and_matched_as_events_arrive,
    audiences_backfill_keep_members_and_their_history_and_read_traits,
    models_are_trained_versioned_promoted_and_rolled_back,
    realtime_segmentation_turns_off_and_catches_up_without_a_restart,
    identify_and_alias_merge_profiles_and_a_withdrawal_takes_back_its_events,
    duplicate_profiles_are_proposed_and_merged_when_confirmed,
    profiles_keep_countries_as_codes_and_amounts_in_one_currency,
);

feed_on_both_backends!(
    the_feed_carries_events_consent_and_erasures_in_commit_order,
    positions_are_never_given_again_after_the_newest_rows_go,
    a_follower_wakes_on_commit,
    a_withdrawal_on_one_replica_counts_at_once_on_another,
    erasure_notices_are_listed_kept_by_erasure_and_aged_out,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn feed_out_of_order_commits_on_several_replicas_are_never_skipped() {
    feed::out_of_order_commits_on_several_replicas_are_never_skipped().await
}

/// The connection edge does not depend on the database: SQLite only.
mod security_edge {
    use crate::{helpers::Backend::Sqlite, security};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn distinct_huge_credentials_leave_memory_bounded() {
        security::distinct_huge_credentials_leave_memory_bounded(Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients_are_cut_off_and_connections_bounded() {
        security::slow_clients_are_cut_off_and_connections_bounded(Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        security::forwarded_addresses_are_believed_only_from_trusted_proxies(Sqlite).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_schemas_agree_apart_from_the_listed_differences() {
    suite::both_schemas_agree_apart_from_the_listed_differences().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_behave_as_one_collector() {
    suite::two_replicas(helpers::Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_gives_503_and_the_collector_recovers() {
    suite::an_unreachable_database_gives_503_and_recovers(helpers::Backend::Postgres).await
}
