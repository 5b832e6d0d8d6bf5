"""Which database engine the suite's apps use: SQLite (the default) or PostgreSQL.

``TELEREAD_TEST_BACKEND=postgresql`` gives every app the suite builds (``suite_settings``) a
database of its own on one PostgreSQL server per test process (tests/postgres_server.py), copied
from a template migrated once: the same tests, the other engine. ``make test`` runs the
storage-heavy modules that way too (tests/test_postgres_suite.py).
"""

from __future__ import annotations

import os
import queue
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import sqlite_utils

from service.settings import Settings
from service.storage import Database
from service.storage.postgres.connection import PostgresConnection
from service.storage.postgres.database import PostgresDatabase
from service.storage.postgres.schema import identity_tables_of

from . import storage_gate
from .postgres_server import PostgresServer, start_postgres

#: Modules whose tests ``make test`` runs on both engines (each test twice, ``[sqlite]`` and
#: ``[postgresql]``): those whose tests are mostly storage (claims, sessions, audit, reports,
#: patients, peer review...), chosen so the second engine costs seconds, not minutes. The rest
#: run on SQLite; ``TELEREAD_TEST_BACKEND=postgresql`` runs every module on PostgreSQL. A test
#: that opens a database of its own opens it with :func:`database_at` or :func:`connection_at`
#: (never ``Database(tmp_path / ...)`` or ``sqlite_utils.Database``), or its second run would not
#: be on PostgreSQL: ATNA forwarding on PostgreSQL stopped after one record, and the test that
#: would have shown it opened a SQLite file.
BOTH_BACKENDS = frozenset(
    {
        "test_atna_forwarding",
        "test_effects",
        "test_hl7_orders",
        "test_orders_foundation",
        "test_patient_index_core",
        "test_patient_merges",
        "test_peer_review_qc",
        "test_peer_review_sampling",
        "test_quality_http",
        "test_recognition_list",
        "test_recognition_mark",
        "test_repeat_exams",
        "test_session_cache",
        "test_stored_files",
        "test_study_layouts",
        "test_study_openings",
        # chosen for the storage functions they run (tests/storage_gate.py), cheaply
        "test_audit_group_commit",
        "test_audit_labels",
        "test_report_verify_cli",
        "test_roster_people",
        "test_webhook",
    }
)

#: Single tests of other modules that ``make test`` also runs on both engines: each runs storage
#: functions no module above runs on PostgreSQL (tests/storage_gate.py fails the run otherwise),
#: in modules too slow to run whole twice. ``module::function``.
BOTH_BACKENDS_TESTS: frozenset[str] = frozenset(
    {
        "test_admin_api::test_last_admin_rule_holds_whoever_asks",
        "test_admin_api::test_password_change_keeps_the_current_session_and_revokes_the_others",
        "test_api_tokens::test_api_token_authenticates_as_its_user",
        "test_audit::test_an_upload_records_the_uploader_the_study_and_the_patient",
        "test_authorisation_matrix::test_a_write_route_admits_exactly_whom_the_table_says",
        "test_authorisation_matrix::test_an_administrator_revokes_any_signers_certificate",
        "test_claims::test_the_holder_renews_the_lease_without_a_new_event",
        "test_consultation_requests::test_second_request_for_the_same_study_is_a_409_conflict",
        "test_dicom_port::test_nobody_moves_studies_with_c_move",
        "test_key_images::test_marking_signing_and_the_figures",
        "test_patient_identity_capture::test_backfill_reads_the_numbers_of_studies_already_in_orthanc",
        "test_patient_link_admin::test_linking_a_candidate_joins_the_persons_once_and_is_audited",
        "test_peer_review_http::test_a_clinically_significant_score_runs_to_a_linked_correction_and_is_closed",
        "test_peer_review_http::test_a_manager_picks_a_report_once_and_only_an_issued_one",
        "test_private_caching::test_every_other_get_route_is_not_stored_by_default",
        "test_report_dicom_conformance::test_teleread_user_dicom_name_sets_and_clears_the_name",
        "test_report_review::test_an_edit_issues_the_reviewers_text_and_keeps_the_writers",
        "test_report_review::test_return_with_a_comment_goes_back_to_the_writer",
        "test_reports::test_a_password_change_keeps_the_signing_key",
        "test_saved_filters::test_saved_filters_work_as_worklist_queries",
        "test_signing::test_a_specialist_imports_a_pkcs12_and_its_issuer_becomes_a_trusted_ca",
        "test_study_ownership::test_instances_a_crash_left_marked_are_moved_out_at_the_next_round",
        "test_turnaround::test_the_derived_facts_equal_a_recomputation_from_events",
        "test_turnaround_columns::test_a_block_whose_codes_overflow_is_read_from_its_facts",
    }
)

#: Of a parametrized test above, the cases (pytest's ids, without the engine) that run on
#: PostgreSQL too; its other cases run on SQLite alone. The cases named are those whose storage
#: functions no other test of the share runs on PostgreSQL (the gate's report says which).
BOTH_BACKENDS_CASES: dict[str, frozenset[str]] = {
    "test_authorisation_matrix::test_a_write_route_admits_exactly_whom_the_table_says": frozenset(
        {
            "DELETE /api/report-templates/{id}",
            "DELETE /api/roster/{id}",
            "DELETE /api/tokens/{id}",
            "DELETE /api/worklist/filters/{id}",
            "POST /api/admin/hl7-outbox/{id}/retry",
            "POST /api/admin/patients/links",
            "POST /api/admin/users/{id}/password",
            "POST /api/consultations/{id}/messages",
            "POST /api/consultations/{id}/report/acknowledgement",
            "POST /api/consultations/{id}/report/critical-acknowledgement",
            "POST /api/notifications/{id}/read",
            "POST /api/patients/{id}/reasons",
        }
    ),
    "test_dicom_port::test_nobody_moves_studies_with_c_move": frozenset({"XIPING_CT"}),
}


def runs_on_postgresql_too(test: str, case: str) -> bool:
    """Whether the case ``case`` (pytest's id without the engine) of ``test`` (a
    ``module::function`` of :data:`BOTH_BACKENDS_TESTS`) runs on PostgreSQL as well."""
    cases = BOTH_BACKENDS_CASES.get(test)
    return cases is None or case in cases


_lock = threading.Lock()
_server: PostgresServer | None = None
_template: str | None = None
_chosen: str | None = None
_at: dict[Path, str] = {}
_identity_tables: frozenset[str] | None = None
#: Copies of the template made ahead, by a thread of their own (:func:`_make_spares`).
SPARES = 2
_spares: queue.Queue[str] = queue.Queue(SPARES)
_spare_maker: threading.Thread | None = None
_stopping = threading.Event()


def backend() -> str:
    """The engine of the apps being built now: the module's choice (conftest's
    ``database_backend``), else ``TELEREAD_TEST_BACKEND``, else SQLite."""
    return _chosen or os.environ.get("TELEREAD_TEST_BACKEND", "sqlite")


def choose(name: str | None) -> None:
    global _chosen
    _chosen = name


def server() -> PostgresServer:
    """This test process's PostgreSQL server, started at the first call."""
    global _server
    with _lock:
        if _server is None:
            _server = start_postgres()
        return _server


def new_database_url(scratch: Path) -> str:
    """A fresh, migrated database's URL (a copy of the template, migrated at the first call).

    The copies are made ahead, :data:`SPARES` at a time, on a thread of their own: a copy
    (``CREATE DATABASE ... TEMPLATE``, 10 MB) takes 0.05 s on an idle machine but 0.3-1.5 s on
    a busy one, mostly waiting, and every PostgreSQL app and database of the suite takes one."""
    global _template, _spare_maker
    pg = server()
    with _lock:
        if _template is None:
            url = pg.new_database()
            PostgresDatabase(url, scratch / "template.db").close()
            _template = url.rsplit("/", 1)[1]
        if _spare_maker is None:
            _stopping.clear()
            _spare_maker = threading.Thread(
                target=_make_spares, args=(pg, _template), name="pg-spares", daemon=True
            )
            _spare_maker.start()
    while True:
        try:
            return _spares.get(timeout=1)
        except queue.Empty:  # the maker died (the server is gone): say why here
            if _spare_maker is None or not _spare_maker.is_alive():
                return pg.new_database(template=_template)


def _make_spares(pg: PostgresServer, template: str) -> None:
    while not _stopping.is_set():
        url = pg.new_database(template=template)
        while not _stopping.is_set():
            try:
                _spares.put(url, timeout=0.2)
                break
            except queue.Full:
                continue


def database_url_at(path: Path) -> str | None:
    """On PostgreSQL, the database that stands for the SQLite file ``path`` (made at the first
    call, the same at every later one: a test that reopens "the file" reopens it); on SQLite,
    ``None``."""
    if backend() != "postgresql":
        return None
    with _lock:
        url = _at.get(path)
    if url is None:
        url = new_database_url(path.parent)
        with _lock:
            _at[path] = url
    return url


def database_at(path: Path, **kwargs: Any) -> Database:
    """``Database(path, **kwargs)`` for a test that opens a database of its own: on PostgreSQL
    the database :func:`database_url_at` names, its audit anchor beside ``path`` as on SQLite."""
    url = database_url_at(path)
    if url is None:
        return Database(path, **kwargs)
    return PostgresDatabase(url, path, readers=kwargs.get("readers", 4))


def connection_at(path: Path, migrated: Path) -> Any:
    """One connection with the surface the storage functions take (``sqlite_utils.Database``'s),
    on a migrated database, for tests that call them directly, outside ``Database``'s
    transactions. Autocommit on both engines: each statement commits unless the test says
    ``BEGIN``. On SQLite a copy of ``migrated`` at ``path``; on PostgreSQL the database
    :func:`database_url_at` names. Rows are plain tuples on SQLite (``sqlite3.Row`` compares
    unequal to a tuple); on PostgreSQL tuples that can also be read by name."""
    global _identity_tables
    url = database_url_at(path)
    if url is not None:
        if _identity_tables is None:  # every database is a copy of the one template
            _identity_tables = identity_tables_of(url)
        return PostgresConnection(url, _identity_tables)
    if not path.exists():
        shutil.copyfile(migrated, path)
    return sqlite_utils.Database(storage_gate.traced(sqlite3.connect(path, isolation_level=None)))


def cli_environment(settings: Settings) -> dict[str, str]:
    """The environment of a ``teleread`` command run against an app's data: its data directory,
    and its PostgreSQL database when it has one."""
    environment = {**os.environ, "TELEREAD_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        environment["TELEREAD_DATABASE_URL"] = settings.database_url
    return environment


def stop() -> None:
    global _server, _template, _spare_maker, _identity_tables
    _stopping.set()
    if _spare_maker is not None:
        _spare_maker.join()
    while not _spares.empty():
        _spares.get_nowait()
    with _lock:
        _spare_maker = None
        if _server is not None:
            _server.stop()
        _server, _template, _identity_tables = None, None, None
        _at.clear()
