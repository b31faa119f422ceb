//! One conformance suite for the hub's backend seam (`poros_hub::state::HubBackend`), run
//! against both implementations: every scenario is an async function of an
//! `Arc<dyn HubBackend>`, and the table at the end makes two tests of each,
//! `redb_<scenario>` (a fresh redb store in a temporary directory) and
//! `postgres_<scenario>` (a fresh database on a PostgreSQL server this test binary starts),
//! so a failure names the backend.
//!
//! The redb implementation is the specification: same inputs, same outputs, same counters
//! and statistics, same refusals. The scenarios use only the trait (no backend's tables), and
//! each assertion is exact, so a backend that differs fails it.

#[path = "conformance/concurrency.rs"]
mod concurrency;
#[path = "conformance/exchange.rs"]
mod exchange;
#[path = "conformance/fixture.rs"]
mod fixture;
#[path = "conformance/helpers.rs"]
mod helpers;
#[path = "conformance/registry.rs"]
mod registry;
#[path = "conformance/repair.rs"]
mod repair;
#[path = "conformance/statements.rs"]
mod statements;
#[path = "conformance/statistics.rs"]
mod statistics;

/// `scenario => redb_test, postgres_test` for each scenario `module::scenario`.
macro_rules! scenarios {
    ($($module:ident :: $name:ident => $redb:ident, $pg:ident;)*) => {
        $(
            #[test]
            fn $redb() {
                fixture::run_redb(|b| Box::pin($module::$name(b)));
            }

            #[test]
            fn $pg() {
                fixture::run_postgres(stringify!($name), |b| Box::pin($module::$name(b)));
            }
        )*
    };
}

scenarios! {
    // Ported from state/tests.rs.
    exchange::accept_is_idempotent_and_conflicts_are_refused
        => redb_accept_is_idempotent_and_conflicts_are_refused,
           postgres_accept_is_idempotent_and_conflicts_are_refused;
    exchange::answers_relay_once_expiry_notifies_and_retention_frees_bodies
        => redb_answers_relay_once_expiry_notifies_and_retention_frees_bodies,
           postgres_answers_relay_once_expiry_notifies_and_retention_frees_bodies;
    repair::damaged_body_holds_deliveries_until_repaired_or_lost
        => redb_damaged_body_holds_deliveries_until_repaired_or_lost,
           postgres_damaged_body_holds_deliveries_until_repaired_or_lost;
    registry::audit_is_paged_from_a_cursor
        => redb_audit_is_paged_from_a_cursor,
           postgres_audit_is_paged_from_a_cursor;
    // Ported from state/directory_tests.rs.
    registry::parents_are_checked_in_the_commit_and_edits_audited
        => redb_parents_are_checked_in_the_commit_and_edits_audited,
           postgres_parents_are_checked_in_the_commit_and_edits_audited;
    // Ported from state/statements.rs.
    statements::statements_are_checked_and_stored_once
        => redb_statements_are_checked_and_stored_once,
           postgres_statements_are_checked_and_stored_once;
    statements::statements_wait_for_the_receipt_and_go_one_per_document_in_order
        => redb_statements_wait_for_the_receipt_and_go_one_per_document_in_order,
           postgres_statements_wait_for_the_receipt_and_go_one_per_document_in_order;
    statements::added_recipients_get_a_delivery_counted_like_any_other
        => redb_added_recipients_get_a_delivery_counted_like_any_other,
           postgres_added_recipients_get_a_delivery_counted_like_any_other;
    // The backend contract.
    exchange::accepting_twice_keeps_the_first
        => redb_accepting_twice_keeps_the_first,
           postgres_accepting_twice_keeps_the_first;
    exchange::an_answer_ends_a_delivery_once
        => redb_an_answer_ends_a_delivery_once,
           postgres_an_answer_ends_a_delivery_once;
    exchange::pending_deliveries_are_listed_oldest_first
        => redb_pending_deliveries_are_listed_oldest_first,
           postgres_pending_deliveries_are_listed_oldest_first;
    exchange::expiry_lists_the_oldest_pending_deliveries_first
        => redb_expiry_lists_the_oldest_pending_deliveries_first,
           postgres_expiry_lists_the_oldest_pending_deliveries_first;
    exchange::retention_frees_a_body_only_when_every_document_is_done
        => redb_retention_frees_a_body_only_when_every_document_is_done,
           postgres_retention_frees_a_body_only_when_every_document_is_done;
    exchange::retention_releases_in_answer_order_up_to_the_limit
        => redb_retention_releases_in_answer_order_up_to_the_limit,
           postgres_retention_releases_in_answer_order_up_to_the_limit;
    statements::relays_to_an_addressee_go_in_acceptance_order
        => redb_relays_to_an_addressee_go_in_acceptance_order,
           postgres_relays_to_an_addressee_go_in_acceptance_order;
    statements::a_statement_is_relayed_to_each_addressee
        => redb_a_statement_is_relayed_to_each_addressee,
           postgres_a_statement_is_relayed_to_each_addressee;
    repair::repair_bookkeeping_and_the_scrubs_reads
        => redb_repair_bookkeeping_and_the_scrubs_reads,
           postgres_repair_bookkeeping_and_the_scrubs_reads;
    registry::tokens_are_redeemed_once
        => redb_tokens_are_redeemed_once,
           postgres_tokens_are_redeemed_once;
    registry::registry_records_round_trip
        => redb_registry_records_round_trip,
           postgres_registry_records_round_trip;
    registry::a_write_from_a_stale_read_is_refused
        => redb_a_write_from_a_stale_read_is_refused,
           postgres_a_write_from_a_stale_read_is_refused;
    statistics::counters_equal_a_recount
        => redb_counters_equal_a_recount,
           postgres_counters_equal_a_recount;
    statistics::connections_paper_counts_and_overdue
        => redb_connections_paper_counts_and_overdue,
           postgres_connections_paper_counts_and_overdue;
    // Concurrency.
    concurrency::concurrent_accepts_store_once
        => redb_concurrent_accepts_store_once,
           postgres_concurrent_accepts_store_once;
    concurrency::concurrent_accepts_of_different_documents_all_count
        => redb_concurrent_accepts_of_different_documents_all_count,
           postgres_concurrent_accepts_of_different_documents_all_count;
    concurrency::concurrent_answers_record_once
        => redb_concurrent_answers_record_once,
           postgres_concurrent_answers_record_once;
    concurrency::concurrent_statements_store_once
        => redb_concurrent_statements_store_once,
           postgres_concurrent_statements_store_once;
    concurrency::concurrent_redeems_use_a_token_once
        => redb_concurrent_redeems_use_a_token_once,
           postgres_concurrent_redeems_use_a_token_once;
    registry::a_restore_mark_is_kept_and_a_later_one_replaces_it
        => redb_a_restore_mark_is_kept_and_a_later_one_replaces_it,
           postgres_a_restore_mark_is_kept_and_a_later_one_replaces_it;
}
