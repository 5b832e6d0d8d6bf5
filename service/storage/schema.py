"""Schema and migrations, versioned in code and applied at start-up before serving.

Each migration is a small function registered on ``migrations``; sqlite-utils records which ones
ran. SQL stays close to portable (no SQLite-only types beyond INTEGER PRIMARY KEY) so that a
PostgreSQL backend can follow.

Migrations are frozen: each holds the SQL and the data transformation of its day, and imports no
live code (service/storage/migration_data/ keeps the longer ones), so a database migrated today
ends up exactly as one migrated the day the migration was written. A change is a new migration.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("teleread")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE facilities (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('township', 'county', 'regional')),
            aet TEXT NOT NULL UNIQUE,
            timezone TEXT NOT NULL DEFAULT 'Asia/Shanghai',
            contact TEXT NOT NULL DEFAULT '',
            dicom_host TEXT,
            dicom_port INTEGER,
            created_at TEXT NOT NULL
        );
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            display_name TEXT NOT NULL DEFAULT '',
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('radiographer', 'clinician', 'requester',
                                               'specialist', 'manager', 'admin')),
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            locale TEXT,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            csrf_token TEXT NOT NULL,
            user_id INTEGER NOT NULL REFERENCES users(id),
            client_ip TEXT,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE INDEX sessions_user ON sessions(user_id);
        CREATE TABLE login_failures (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL,
            client_ip TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX login_failures_username ON login_failures(username, at);
        CREATE INDEX login_failures_ip ON login_failures(client_ip, at);
        CREATE TABLE ingest_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE studies (
            orthanc_id TEXT PRIMARY KEY,
            study_instance_uid TEXT NOT NULL,
            patient_id TEXT NOT NULL DEFAULT '',
            patient_name TEXT NOT NULL DEFAULT '',
            patient_birth_date TEXT NOT NULL DEFAULT '',
            patient_sex TEXT NOT NULL DEFAULT '',
            accession_number TEXT NOT NULL DEFAULT '',
            study_date TEXT NOT NULL DEFAULT '',
            study_description TEXT NOT NULL DEFAULT '',
            modalities TEXT NOT NULL DEFAULT '',
            body_part TEXT NOT NULL DEFAULT '',
            series_count INTEGER NOT NULL DEFAULT 0,
            instances_count INTEGER NOT NULL DEFAULT 0,
            stable_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX studies_uid ON studies(study_instance_uid);
        CREATE TABLE upload_attributions (
            id INTEGER PRIMARY KEY,
            study_instance_uid TEXT NOT NULL,
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            user_id INTEGER NOT NULL REFERENCES users(id),
            via TEXT NOT NULL CHECK (via IN ('upload', 'stow')),
            client_ip TEXT,
            at TEXT NOT NULL,
            UNIQUE (study_instance_uid, facility_id)
        );
        CREATE TABLE consultations (
            id INTEGER PRIMARY KEY,
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            study_instance_uid TEXT,
            orthanc_study_id TEXT,
            accession_number TEXT NOT NULL DEFAULT '',
            patient_id TEXT NOT NULL DEFAULT '',
            patient_name TEXT NOT NULL DEFAULT '',
            modality TEXT NOT NULL DEFAULT '',
            body_part TEXT NOT NULL DEFAULT '',
            instances INTEGER NOT NULL DEFAULT 0,
            priority TEXT NOT NULL DEFAULT 'routine'
                CHECK (priority IN ('stat', 'urgent', 'routine')),
            priority_rank INTEGER NOT NULL DEFAULT 2,
            status TEXT NOT NULL,
            clinical_history TEXT,
            clinical_question TEXT,
            callback_phone TEXT,
            requested_by INTEGER REFERENCES users(id),
            requested_at TEXT,
            received_at TEXT,
            received_via TEXT,
            due_at TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (study_instance_uid, facility_id)
        );
        CREATE INDEX consultations_worklist
            ON consultations(due_at, priority_rank, created_at, id);
        CREATE INDEX consultations_facility ON consultations(facility_id, due_at);
        CREATE INDEX consultations_accession ON consultations(facility_id, accession_number);
        CREATE TABLE consultation_events (
            id INTEGER PRIMARY KEY,
            consultation_id INTEGER NOT NULL REFERENCES consultations(id),
            type TEXT NOT NULL,
            at TEXT NOT NULL,
            actor_user_id INTEGER REFERENCES users(id),
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX consultation_events_consultation ON consultation_events(consultation_id, at);
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            orthanc_study_id TEXT NOT NULL,
            study_instance_uid TEXT NOT NULL,
            patient_id TEXT NOT NULL DEFAULT '',
            patient_name TEXT NOT NULL DEFAULT '',
            origin TEXT NOT NULL,
            remote_aet TEXT NOT NULL DEFAULT '',
            remote_ip TEXT NOT NULL DEFAULT '',
            instances INTEGER NOT NULL DEFAULT 0,
            reason TEXT NOT NULL,
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            resolved_at TEXT,
            UNIQUE (orthanc_study_id, origin, remote_aet)
        );
        """
    )


@migrations()
def m002_audit_trail(db: sqlite_utils.Database) -> None:
    """Append-only audit trail: triggers refuse UPDATE and DELETE; each row hash-chains the last."""
    db.executescript(
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            user_id INTEGER,
            username TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL DEFAULT '',
            facility_id INTEGER,
            action TEXT NOT NULL,
            resource_type TEXT NOT NULL DEFAULT '',
            resource_id TEXT NOT NULL DEFAULT '',
            patient_id TEXT NOT NULL DEFAULT '',
            study_instance_uid TEXT NOT NULL DEFAULT '',
            client_ip TEXT NOT NULL DEFAULT '',
            outcome TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'failed')),
            detail TEXT NOT NULL DEFAULT '{}',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE
        );
        CREATE INDEX audit_log_at ON audit_log(at);
        CREATE INDEX audit_log_patient ON audit_log(patient_id, at);
        CREATE INDEX audit_log_user ON audit_log(user_id, at);
        CREATE INDEX audit_log_facility ON audit_log(facility_id, at);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        """
    )


@migrations()
def m003_api_tokens(db: sqlite_utils.Database) -> None:
    """Named, revocable bearer tokens for API clients (scripts, gateways), apart from logins."""
    db.executescript(
        """
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX api_tokens_user ON api_tokens(user_id);
        """
    )


@migrations()
def m004_audit_patient_index(db: sqlite_utils.Database) -> None:
    """Which patients each audit record concerns, for "who looked at this patient's data".

    Filled by ``append_audit`` in the same transaction as the record (and here, once, for the
    records written before this migration). Append-only like ``audit_log``; ``teleread audit
    verify`` checks it against the records. Also indexes for the audit search by user, facility,
    action and outcome in id order (SQLite appends the rowid to every index entry).
    """
    from .migration_data.m004_audit_patients import index_existing_records

    db.executescript(
        """
        CREATE TABLE audit_patients (
            audit_id INTEGER NOT NULL REFERENCES audit_log(id),
            patient_id TEXT NOT NULL
        );
        CREATE UNIQUE INDEX audit_patients_patient ON audit_patients(patient_id, audit_id);
        CREATE TRIGGER audit_patients_no_update BEFORE UPDATE ON audit_patients
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_patients_no_delete BEFORE DELETE ON audit_patients
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE INDEX audit_log_username ON audit_log(username);
        CREATE INDEX audit_log_facility_id ON audit_log(facility_id);
        CREATE INDEX audit_log_action ON audit_log(action);
        CREATE INDEX audit_log_outcome ON audit_log(outcome);
        """
    )
    index_existing_records(db)


@migrations()
def m005_worklist_queues_and_claims(db: sqlite_utils.Database) -> None:
    """Subspecialty queues (routing) and claim leases on consultations; readers' subspecialties."""
    db.executescript(
        """
        ALTER TABLE consultations ADD COLUMN queue TEXT NOT NULL DEFAULT 'general';
        ALTER TABLE consultations ADD COLUMN claimed_by INTEGER REFERENCES users(id);
        ALTER TABLE consultations ADD COLUMN claimed_at TEXT;
        ALTER TABLE consultations ADD COLUMN claim_expires_at TEXT;
        ALTER TABLE users ADD COLUMN subspecialties TEXT NOT NULL DEFAULT '';
        CREATE INDEX consultations_queue ON consultations(queue, due_at);
        CREATE INDEX consultations_claims ON consultations(claim_expires_at)
            WHERE claimed_by IS NOT NULL;
        """
    )


@migrations()
def m006_roster_and_notifications(db: sqlite_utils.Database) -> None:
    """The duty roster (who is on duty when) and in-app notifications."""
    db.executescript(
        """
        CREATE TABLE roster_entries (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            starts_at TEXT NOT NULL,
            ends_at TEXT NOT NULL,
            role_on_duty TEXT NOT NULL CHECK (role_on_duty IN ('reader', 'manager')),
            created_by INTEGER REFERENCES users(id),
            created_at TEXT NOT NULL,
            CHECK (ends_at > starts_at)
        );
        CREATE INDEX roster_entries_period ON roster_entries(ends_at, starts_at);
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            kind TEXT NOT NULL,
            consultation_id INTEGER REFERENCES consultations(id),
            title TEXT NOT NULL,
            body TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            read_at TEXT
        );
        CREATE INDEX notifications_user ON notifications(user_id, read_at, created_at);
        CREATE INDEX consultation_events_type ON consultation_events(type, consultation_id);
        """
    )


@migrations()
def m007_consultation_messages(db: sqlite_utils.Database) -> None:
    """The message thread of a consultation: append-only, like the events and the audit trail."""
    db.executescript(
        """
        CREATE TABLE consultation_messages (
            id INTEGER PRIMARY KEY,
            consultation_id INTEGER NOT NULL REFERENCES consultations(id),
            author_id INTEGER NOT NULL REFERENCES users(id),
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX consultation_messages_thread ON consultation_messages(consultation_id, id);
        CREATE TRIGGER consultation_messages_no_update BEFORE UPDATE ON consultation_messages
            BEGIN SELECT RAISE(ABORT, 'consultation messages are append-only'); END;
        CREATE TRIGGER consultation_messages_no_delete BEFORE DELETE ON consultation_messages
            BEGIN SELECT RAISE(ABORT, 'consultation messages are append-only'); END;
        """
    )


@migrations()
def m008_worklist_counts_index(db: sqlite_utils.Database) -> None:
    """A covering index for the worklist counts (bench/worklist.py: 25x faster at 100k rows)."""
    db.execute(
        "CREATE INDEX consultations_counts ON consultations(status, priority, queue, facility_id)"
    )


@migrations()
def m009_reports(db: sqlite_utils.Database) -> None:
    """Report templates, drafts, signed versions (immutable), signing identities and deliveries.

    Consultations gain the statuses after reading (``signed``, ``closed``, ``cancelled``); the
    worklist reads open ones through partial indexes so a year of closed history costs nothing.
    """
    db.executescript(
        """
        CREATE TABLE report_templates (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            modality TEXT NOT NULL DEFAULT '',
            body_part TEXT NOT NULL DEFAULT '',
            findings TEXT NOT NULL DEFAULT '',
            impression TEXT NOT NULL DEFAULT '',
            recommendation TEXT NOT NULL DEFAULT '',
            macros TEXT NOT NULL DEFAULT '[]',
            updated_by INTEGER REFERENCES users(id),
            updated_at TEXT NOT NULL
        );
        CREATE TABLE reports (
            id INTEGER PRIMARY KEY,
            consultation_id INTEGER NOT NULL UNIQUE REFERENCES consultations(id),
            state TEXT NOT NULL CHECK (state IN ('draft', 'signed')),
            author_id INTEGER REFERENCES users(id),
            findings TEXT NOT NULL DEFAULT '',
            impression TEXT NOT NULL DEFAULT '',
            recommendation TEXT NOT NULL DEFAULT '',
            critical INTEGER NOT NULL DEFAULT 0,
            refer INTEGER NOT NULL DEFAULT 0,
            quality TEXT CHECK (quality IN ('good', 'acceptable', 'poor')),
            quality_reason TEXT NOT NULL DEFAULT '',
            template_id INTEGER REFERENCES report_templates(id),
            signed_versions INTEGER NOT NULL DEFAULT 0,
            draft_saved_at TEXT,
            acknowledged_version INTEGER,
            acknowledged_at TEXT,
            acknowledged_by INTEGER REFERENCES users(id),
            critical_acknowledged_at TEXT,
            critical_acknowledged_by INTEGER REFERENCES users(id),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE report_versions (
            id INTEGER PRIMARY KEY,
            report_id INTEGER NOT NULL REFERENCES reports(id),
            version INTEGER NOT NULL,
            supersedes_version INTEGER,
            findings TEXT NOT NULL,
            impression TEXT NOT NULL,
            recommendation TEXT NOT NULL,
            critical INTEGER NOT NULL,
            refer INTEGER NOT NULL,
            quality TEXT,
            quality_reason TEXT NOT NULL DEFAULT '',
            signer_id INTEGER NOT NULL REFERENCES users(id),
            signer_name TEXT NOT NULL,
            certificate_serial TEXT NOT NULL,
            signed_at TEXT NOT NULL,
            verification_code TEXT NOT NULL UNIQUE,
            verification_url TEXT NOT NULL,
            canonical BLOB NOT NULL,
            signature BLOB NOT NULL,
            pdf BLOB NOT NULL,
            pdf_sop_instance_uid TEXT,
            sr_sop_instance_uid TEXT,
            UNIQUE (report_id, version)
        );
        CREATE TRIGGER report_versions_immutable BEFORE UPDATE OF
            report_id, version, supersedes_version, findings, impression, recommendation,
            critical, refer, quality, quality_reason, signer_id, signer_name, certificate_serial,
            signed_at, verification_code, verification_url, canonical, signature, pdf
            ON report_versions
            BEGIN SELECT RAISE(ABORT, 'signed report versions are immutable'); END;
        CREATE TRIGGER report_versions_no_delete BEFORE DELETE ON report_versions
            BEGIN SELECT RAISE(ABORT, 'signed report versions are immutable'); END;
        CREATE TABLE signing_identities (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            source TEXT NOT NULL CHECK (source IN ('consortium', 'imported')),
            certificate TEXT NOT NULL,
            chain TEXT NOT NULL DEFAULT '',
            locked_key BLOB NOT NULL,
            serial TEXT NOT NULL,
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            created_at TEXT NOT NULL,
            revoked_at TEXT,
            revocation_reason TEXT
        );
        CREATE INDEX signing_identities_user ON signing_identities(user_id, revoked_at);
        CREATE TABLE trusted_cas (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            certificate TEXT NOT NULL UNIQUE,
            added_at TEXT NOT NULL
        );
        CREATE TABLE report_deliveries (
            id INTEGER PRIMARY KEY,
            report_version_id INTEGER NOT NULL REFERENCES report_versions(id),
            channel TEXT NOT NULL CHECK (channel IN ('orthanc', 'dicom')),
            status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            last_error TEXT NOT NULL DEFAULT '',
            done_at TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (report_version_id, channel)
        );
        CREATE INDEX report_deliveries_due ON report_deliveries(status, next_attempt_at);
        CREATE TABLE delivery_attempts (
            id INTEGER PRIMARY KEY,
            delivery_id INTEGER NOT NULL REFERENCES report_deliveries(id),
            at TEXT NOT NULL,
            ok INTEGER NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id, id);
        CREATE INDEX consultations_open_worklist
            ON consultations(due_at, priority_rank, created_at, id)
            WHERE status NOT IN ('signed', 'closed', 'cancelled');
        CREATE INDEX consultations_open_counts
            ON consultations(status, priority, queue, facility_id)
            WHERE status NOT IN ('signed', 'closed', 'cancelled');
        """
    )


@migrations()
def m009b_default_report_templates(db: sqlite_utils.Database) -> None:
    """The templates a new installation starts with; managers edit them as data afterwards."""
    import json
    from datetime import UTC, datetime

    from .migration_data.m009b_templates import DEFAULT_TEMPLATES

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for template in DEFAULT_TEMPLATES:
        db.execute(
            "INSERT INTO report_templates (name, modality, body_part, findings, impression,"
            " recommendation, macros, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                template["name"],
                template["modality"],
                template["body_part"],
                template["findings"],
                template["impression"],
                template["recommendation"],
                json.dumps(template["macros"], ensure_ascii=False),
                now,
            ],
        )


@migrations()
def m010_turnaround_facts(db: sqlite_utils.Database) -> None:
    """One row per consultation with the first time of each milestone, for the dashboard.

    Derived from ``consultation_events`` (the truth) by ``append_event`` in the same transaction;
    filled here, once, for existing data, by the frozen copy of that day's rule.
    """
    from .migration_data.m010_turnaround_facts import FACTS_DDL, fill_facts

    db.executescript(FACTS_DDL)
    fill_facts(db)


@migrations()
def m011_saved_filters(db: sqlite_utils.Database) -> None:
    """Named worklist filter sets, one list per user (the filters are a JSON object)."""
    db.executescript(
        """
        CREATE TABLE saved_filters (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            name TEXT NOT NULL,
            filters TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (user_id, name)
        );
        """
    )


@migrations()
def m012_turnaround_columns(db: sqlite_utils.Database) -> None:
    """``turnaround_facts`` as packed numpy columns per 512 consultations, so year-wide
    dashboard questions are answered in tens of milliseconds (``turnaround_columns``); kept by
    ``append_event`` in the same transaction, built here once for existing facts (by the frozen
    copy of that day's packer)."""
    from .migration_data.m012_turnaround_columns import COLUMNS_DDL, pack_all

    db.executescript(COLUMNS_DDL)
    pack_all(db)


@migrations()
def m013_worklist_priority_index(db: sqlite_utils.Database) -> None:
    """Open items by priority in worklist order: a "stat only" page reads the few stat rows in
    order instead of walking every open row to find them."""
    db.executescript(
        """
        CREATE INDEX consultations_open_by_priority
            ON consultations(priority, due_at, priority_rank, created_at, id)
            WHERE status NOT IN ('signed', 'closed', 'cancelled');
        """
    )


@migrations()
def m014_study_openings(db: sqlite_utils.Database) -> None:
    """Who has opened which study, shared by every process serving this file, so that a
    frame's ``study.viewed`` is audited once per (session or API token, study) however many
    processes serve the frames (``storage.viewing.open_study``). Absent ids are 0, not NULL:
    NULLs never collide in a primary key. Rows older than a day are pruned as openings go."""
    db.executescript(
        """
        CREATE TABLE study_openings (
            user_id INTEGER NOT NULL,
            session_id INTEGER NOT NULL DEFAULT 0,
            api_token_id INTEGER NOT NULL DEFAULT 0,
            study_instance_uid TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            PRIMARY KEY (user_id, session_id, api_token_id, study_instance_uid)
        );
        CREATE INDEX study_openings_opened_at ON study_openings(opened_at);
        """
    )


@migrations()
def m015_study_layouts(db: sqlite_utils.Database) -> None:
    """The viewer's study layouts (series, instances, sizes, windows, Orthanc ids), read from
    Orthanc's DICOMweb metadata once and shared by every web process, so a study opened in one
    process is not read from Orthanc again by the process that serves its next frame (Orthanc
    reads every file of the study to answer). Rows are a cache: kept an hour, rebuilt at will."""
    db.executescript(
        """
        CREATE TABLE study_layouts (
            study_instance_uid TEXT PRIMARY KEY,
            orthanc_study_id TEXT NOT NULL,
            built_at REAL NOT NULL,
            layout TEXT NOT NULL
        );
        CREATE INDEX study_layouts_built_at ON study_layouts(built_at);
        """
    )


@migrations()
def m016_quarantined_instances(db: sqlite_utils.Database) -> None:
    """Instances moved out of Orthanc into the quarantine: a C-STORE naming a study another
    facility owns, or a Study UID arriving with a second Patient ID. The row is written in the
    ingest's transaction (``moved_at`` NULL: still in Orthanc); the file is then kept under the
    data directory and the instance deleted from Orthanc, and ``moved_at`` says it was done, so
    a crash in between is finished at the next start instead of leaving it in the owner's study."""
    db.executescript(
        """
        CREATE TABLE quarantined_instances (
            id INTEGER PRIMARY KEY,
            quarantine_id INTEGER NOT NULL REFERENCES quarantine(id),
            orthanc_instance_id TEXT NOT NULL UNIQUE,
            file TEXT NOT NULL DEFAULT '',
            moved_at TEXT
        );
        CREATE INDEX quarantined_instances_pending ON quarantined_instances(moved_at);
        """
    )


@migrations()
def m017_login_failures_pending(db: sqlite_utils.Database) -> None:
    """An attempt is counted before its password is verified (so concurrent guesses cannot slip
    under a limit together) and stays ``pending`` until it turns out wrong. Pending attempts
    count for their account, not for their address: fifty readers behind one clinic address
    logging in at once must not trip the address's limit (service/auth/login_limits.py)."""
    db.execute("ALTER TABLE login_failures ADD COLUMN pending INTEGER NOT NULL DEFAULT 0")


@migrations()
def m018_notification_messages(db: sqlite_utils.Database) -> None:
    """A notice stored as a message code and its parameters, rendered in each reader's language
    when shown (service/worklist/notice_text.py). ``title`` and ``body`` keep an English rendering
    for the webhook and for readers of the table; rows written before this have no code and are
    shown as stored."""
    db.executescript(
        """
        ALTER TABLE notifications ADD COLUMN message TEXT NOT NULL DEFAULT '';
        ALTER TABLE notifications ADD COLUMN params TEXT NOT NULL DEFAULT '{}';
        """
    )


@migrations(transactional=False)
def m019_audit_ids_never_reused(db: sqlite_utils.Database) -> None:
    """``audit_log.id`` becomes AUTOINCREMENT, so the ids of deleted records are never handed out
    again: a trail cut behind the service's back keeps a gap at the cut (which ``teleread audit
    verify`` reports) instead of closing over it with new records after a restart.

    SQLite cannot change a primary key in place, so the table is rebuilt as its documentation
    prescribes (foreign keys off, then in one transaction: create, copy with the same ids, drop,
    rename, the indexes and triggers recreated from their stored definitions, a foreign key
    check). Ids, hashes and the patient index are unchanged, so the chain and its anchor still
    verify. Not run in sqlite-utils' transaction because ``PRAGMA foreign_keys`` cannot change
    inside one; a rebuild interrupted before being recorded is noticed and not repeated.
    """
    import re

    (table_sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'"
    ).fetchone()
    if "AUTOINCREMENT" in table_sql.upper():
        return
    new_sql, replaced = re.subn(
        r"^CREATE TABLE audit_log \(\s*id INTEGER PRIMARY KEY",
        "CREATE TABLE audit_log_rebuilt (id INTEGER PRIMARY KEY AUTOINCREMENT",
        table_sql.strip(),
        flags=re.IGNORECASE,
    )
    if replaced != 1:
        raise RuntimeError("unexpected audit_log definition; cannot rebuild it")
    dependents = [
        row[0]
        for row in db.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'audit_log'"
            " AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name"
        )
    ]
    columns = ", ".join(row[1] for row in db.execute("PRAGMA table_info(audit_log)"))
    conn = db.conn
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(new_sql)
            conn.execute(
                f"INSERT INTO audit_log_rebuilt ({columns}) SELECT {columns} FROM audit_log"
                " ORDER BY id"
            )
            conn.execute("DROP TABLE audit_log")
            conn.execute("ALTER TABLE audit_log_rebuilt RENAME TO audit_log")
            for statement in dependents:
                conn.execute(statement)
            if conn.execute("PRAGMA foreign_key_check").fetchall():
                raise RuntimeError("audit_log rebuild would break foreign keys")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


@migrations()
def m020_write_generation(db: sqlite_utils.Database) -> None:
    """A counter every write transaction of the service that changed a row moves, except the
    group commits of audit records; and triggers move it on any change to the tables a session
    resolves from, whoever makes it (the sqlite3 shell included). What ``Database.version``
    gives read-through caches (the session cache), so an audited request no longer empties the
    cache for the next one. A table the session resolution comes to read needs the triggers."""
    db.execute(
        "CREATE TABLE write_generation (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO write_generation (id, n) VALUES (1, 0)")
    for table in SESSION_TABLES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_generation AFTER {event} ON {table}"
                " BEGIN UPDATE write_generation SET n = n + 1 WHERE id = 1; END"
            )


#: What ``service.auth.sessions.resolve`` reads to say who a token belongs to.
SESSION_TABLES = ("sessions", "users", "facilities", "api_tokens")


@migrations()
def m021_instance_checks(db: sqlite_utils.Database) -> None:
    """The file check (service/dicom/files.py, the one uploads and STOW-RS pass) of instances
    that arrived by C-STORE: one row per Orthanc instance and reception, so a study processed
    again (every later object fires another StableStudy) re-checks only what is new, across
    restarts; ``reason`` '' is a sound file. Quarantined instances keep their own reason (a
    malformed file's, per file), beside their entry's."""
    db.executescript(
        """
        CREATE TABLE instance_checks (
            orthanc_instance_id TEXT PRIMARY KEY,
            received_at TEXT NOT NULL,
            reason TEXT NOT NULL,
            checked_at TEXT NOT NULL
        );
        ALTER TABLE quarantined_instances ADD COLUMN reason TEXT NOT NULL DEFAULT '';
        """
    )


@migrations()
def m022_turnaround_facts_without_sql_engine_indexes(db: sqlite_utils.Database) -> None:
    """The indexes of ``turnaround_facts`` that only the dashboard's SQL engine read (by
    received time, by facility, and a covering one by signed time): that engine is gone (the
    numpy columns answer), and every event paid for keeping them. The one by due time stays for
    the breach list."""
    db.executescript(
        """
        DROP INDEX IF EXISTS turnaround_facts_received;
        DROP INDEX IF EXISTS turnaround_facts_facility;
        DROP INDEX IF EXISTS turnaround_facts_signed;
        """
    )


@migrations()
def m023_turnaround_columns_caught_up_later(db: sqlite_utils.Database) -> None:
    """The column blocks are no longer re-packed in each event's transaction but caught up
    before the dashboard's next question: the last event they hold. Until now they held every
    event as it was written."""
    db.executescript(
        """
        ALTER TABLE turnaround_columns_version
            ADD COLUMN events_through INTEGER NOT NULL DEFAULT 0;
        UPDATE turnaround_columns_version
            SET events_through = (SELECT coalesce(max(id), 0) FROM consultation_events);
        """
    )


@migrations()
def m024_stable_study_layouts(db: sqlite_utils.Database) -> None:
    """Layouts built by the ingest when a study became stable (``stable`` 1): complete as of
    that moment and rebuilt at the study's next StableStudy, so the viewer trusts them for as
    long as they are kept, and the first opening of a study reads no metadata from Orthanc.
    Layouts built on an opening (``stable`` 0) stay a minute's cache, as before."""
    db.executescript("ALTER TABLE study_layouts ADD COLUMN stable INTEGER NOT NULL DEFAULT 0;")


@migrations()
def m025_users_dicom_name(db: sqlite_utils.Database) -> None:
    """The name a user signs DICOM reports with, as a DICOM person name with its ideographic
    and phonetic groups ("Li^Ming=李^明=lǐ^míng"); empty: derived from the display name
    (reports/person_names.py)."""
    db.executescript("ALTER TABLE users ADD COLUMN dicom_name TEXT NOT NULL DEFAULT '';")


@migrations()
def m026_atna_forwarding(db: sqlite_utils.Database) -> None:
    """Per ATNA audit repository (``TELEREAD_ATNA_URL``), the last audit record it is known to
    have received: the trail is the queue, this is the cursor (service/storage/atna_cursor.py)."""
    db.execute(
        "CREATE TABLE atna_forwarding ("
        " destination TEXT PRIMARY KEY,"
        " last_audit_id INTEGER NOT NULL,"
        " forwarded_at TEXT NOT NULL)"
    )


@migrations()
def m027_orders(db: sqlite_utils.Database) -> None:
    """Orders from hospital systems (HL7 v2, FHIR) and the modality worklist.

    Facilities gain the code their HIS puts in MSH-4 (``hl7_code``; the AE title also matches),
    the MLLP address results go to (``hl7_endpoint``, "host:port") and the DICOM character set
    their modalities use (worklist items, HL7 MSH-18). Consultations gain what an order carries
    beyond today's request: the patient's birth date and sex, the requested procedure, the
    placer's order number, and how the request came (``requested_via``)."""
    db.executescript(
        """
        ALTER TABLE facilities ADD COLUMN hl7_code TEXT;
        ALTER TABLE facilities ADD COLUMN hl7_endpoint TEXT;
        ALTER TABLE facilities ADD COLUMN character_set TEXT NOT NULL DEFAULT 'ISO_IR 192';
        CREATE UNIQUE INDEX facilities_hl7_code ON facilities(hl7_code)
            WHERE hl7_code IS NOT NULL;
        ALTER TABLE consultations ADD COLUMN patient_birth_date TEXT NOT NULL DEFAULT '';
        ALTER TABLE consultations ADD COLUMN patient_sex TEXT NOT NULL DEFAULT '';
        ALTER TABLE consultations ADD COLUMN requested_procedure TEXT NOT NULL DEFAULT '';
        ALTER TABLE consultations ADD COLUMN requested_procedure_code TEXT NOT NULL DEFAULT '';
        ALTER TABLE consultations ADD COLUMN placer_order_number TEXT NOT NULL DEFAULT '';
        ALTER TABLE consultations ADD COLUMN requested_via TEXT;
        CREATE INDEX consultations_placer_order ON consultations(facility_id, placer_order_number)
            WHERE placer_order_number != '';
        """
    )


@migrations()
def m029_hl7_received(db: sqlite_utils.Database) -> None:
    """HL7 v2 messages applied from each facility's hospital system, by their control ID
    (MSH-10, unique per sending facility), with the ACK they were answered with: a message
    sent again (an MLLP sender that missed the ACK retries) is answered with the same ACK and
    applied once (service/hl7/dispatch.py)."""
    db.execute(
        "CREATE TABLE hl7_received ("
        " facility_id INTEGER NOT NULL REFERENCES facilities(id),"
        " control_id TEXT NOT NULL,"
        " message_type TEXT NOT NULL,"
        " ack TEXT NOT NULL,"
        " received_at TEXT NOT NULL,"
        " PRIMARY KEY (facility_id, control_id))"
    )


@migrations()
def m030_hl7_outbox(db: sqlite_utils.Database) -> None:
    """HL7 v2 results (ORU^R01) waiting for, or past, their trip to a facility's HIS: one row
    per signed report version whose facility has an MLLP endpoint, written in the signing's own
    transaction (so no signed version is ever forgotten) and worked by the primary's sender
    (service/hl7/results_outbox.py). ``result_status`` is OBR-25: F for the first version, C for
    a correction; ``endpoint`` is the facility's address at signing time."""
    db.executescript(
        """
        CREATE TABLE hl7_outbox (
            id INTEGER PRIMARY KEY,
            consultation_id INTEGER NOT NULL REFERENCES consultations(id),
            report_version_id INTEGER NOT NULL UNIQUE REFERENCES report_versions(id),
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            endpoint TEXT NOT NULL,
            result_status TEXT NOT NULL CHECK (result_status IN ('F', 'C')),
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            reason TEXT NOT NULL DEFAULT '',
            ack_code TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            last_attempt_at TEXT,
            sent_at TEXT
        );
        CREATE INDEX hl7_outbox_due ON hl7_outbox(status, next_attempt_at);
        CREATE INDEX hl7_outbox_consultation ON hl7_outbox(consultation_id, id);
        """
    )


@migrations()
def m031_patient_merges(db: sqlite_utils.Database) -> None:
    """Patient merges a hospital system ordered (HL7 ADT^A40): which facility, which identifier
    survived and which was retired, what the message said of the patient, who or what sent it,
    and whether an administrator reversed it. ``patient_merge_changes`` keeps, per consultation
    the merge rewrote, the values it had before and the values the merge wrote (JSON objects of
    the changed columns only), so a reversal restores exactly those and nothing else."""
    db.executescript(
        """
        CREATE TABLE patient_merges (
            id INTEGER PRIMARY KEY,
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            surviving_patient_id TEXT NOT NULL,
            surviving_authority TEXT NOT NULL DEFAULT '',
            surviving_name TEXT NOT NULL DEFAULT '',
            surviving_birth_date TEXT NOT NULL DEFAULT '',
            surviving_sex TEXT NOT NULL DEFAULT '',
            prior_patient_id TEXT NOT NULL,
            prior_authority TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL,
            merged_at TEXT NOT NULL,
            merged_by INTEGER REFERENCES users(id),
            reversed_at TEXT,
            reversed_by INTEGER REFERENCES users(id)
        );
        CREATE INDEX patient_merges_facility ON patient_merges(facility_id, merged_at);
        CREATE INDEX patient_merges_merged_at ON patient_merges(merged_at);
        CREATE TABLE patient_merge_changes (
            merge_id INTEGER NOT NULL REFERENCES patient_merges(id),
            consultation_id INTEGER NOT NULL REFERENCES consultations(id),
            prior_values TEXT NOT NULL,
            merged_values TEXT NOT NULL,
            PRIMARY KEY (merge_id, consultation_id)
        );
        CREATE INDEX patient_merge_changes_consultation
            ON patient_merge_changes(consultation_id);
        CREATE INDEX IF NOT EXISTS consultations_facility_patient
            ON consultations(facility_id, patient_id);
        """
    )


@migrations()
def m032_two_level_sign_off(db: sqlite_utils.Database) -> None:
    """Two-level sign-off (issue 19). Readers get a professional grade (attending unless told
    otherwise: today's readers report alone). ``report_reviews`` keeps each text a writer signed
    for review (its signed PDF, canonical form and detached signature, never delivered) and what
    the reviewer decided: approved, edited (the reviewer's text became the final version) or
    returned with a comment. The issued version names its reviewer and keeps the reviewer's
    detached signature; ``preliminary`` marks a version released before review."""
    db.executescript(
        """
        ALTER TABLE users ADD COLUMN grade TEXT NOT NULL DEFAULT 'attending'
            CHECK (grade IN ('resident', 'attending', 'associate_chief', 'chief'));
        ALTER TABLE report_versions ADD COLUMN preliminary INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE report_versions ADD COLUMN reviewer_id INTEGER REFERENCES users(id);
        ALTER TABLE report_versions ADD COLUMN reviewer_name TEXT NOT NULL DEFAULT '';
        ALTER TABLE report_versions ADD COLUMN reviewer_certificate_serial TEXT NOT NULL
            DEFAULT '';
        ALTER TABLE report_versions ADD COLUMN reviewed_at TEXT;
        ALTER TABLE report_versions ADD COLUMN text_by TEXT NOT NULL DEFAULT 'writer'
            CHECK (text_by IN ('writer', 'reviewer'));
        CREATE TABLE report_reviews (
            id INTEGER PRIMARY KEY,
            report_id INTEGER NOT NULL REFERENCES reports(id),
            consultation_id INTEGER NOT NULL REFERENCES consultations(id),
            version INTEGER NOT NULL,
            supersedes_version INTEGER,
            state TEXT NOT NULL
                CHECK (state IN ('awaiting', 'approved', 'edited', 'returned')),
            findings TEXT NOT NULL,
            impression TEXT NOT NULL,
            recommendation TEXT NOT NULL,
            critical INTEGER NOT NULL,
            refer INTEGER NOT NULL,
            quality TEXT,
            quality_reason TEXT NOT NULL DEFAULT '',
            writer_id INTEGER NOT NULL REFERENCES users(id),
            writer_name TEXT NOT NULL,
            writer_certificate_serial TEXT NOT NULL,
            written_at TEXT NOT NULL,
            verification_code TEXT NOT NULL,
            verification_url TEXT NOT NULL,
            canonical BLOB NOT NULL,
            signature BLOB NOT NULL,
            pdf BLOB NOT NULL,
            preliminary_version INTEGER,
            reviewer_id INTEGER REFERENCES users(id),
            reviewer_name TEXT NOT NULL DEFAULT '',
            decided_at TEXT,
            comment TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX report_reviews_report ON report_reviews(report_id, id);
        CREATE INDEX report_reviews_awaiting ON report_reviews(state, consultation_id);
        """
    )


@migrations()
def m033_turnaround_review_stages(db: sqlite_utils.Database) -> None:
    """Turnaround facts gain the two-level sign-off's milestones (issue 19): the writer's
    signature for review (``written``) and the reviewer's decision (``reviewed``). Both events
    are new with m032, so no consultation has them yet: nothing to fill."""
    db.executescript(
        """
        ALTER TABLE turnaround_facts ADD COLUMN written_at TEXT;
        ALTER TABLE turnaround_facts ADD COLUMN reviewed_at TEXT;
        """
    )


@migrations()
def m034_key_images(db: sqlite_utils.Database) -> None:
    """Key images (issue 19, 图文报告). ``report_key_images``: what the reader marked on the
    consultation's draft, with the view as seen (window, zoom, pan, rotation, flips, inversion,
    measurements: a JSON object) and a caption. ``report_figures``: a signed version's figures as
    rendered at signing (the PNG the PDF embeds and the canonical form's digest covers), which the
    portal shows. ``report_versions.kos_sop_instance_uid``: the Key Object Selection document
    stored with the study in Orthanc."""
    db.executescript(
        """
        CREATE TABLE report_key_images (
            id INTEGER PRIMARY KEY,
            consultation_id INTEGER NOT NULL REFERENCES consultations(id),
            series_instance_uid TEXT NOT NULL,
            sop_instance_uid TEXT NOT NULL,
            frame INTEGER NOT NULL DEFAULT 1,
            view TEXT NOT NULL,
            caption TEXT NOT NULL DEFAULT '',
            marked_by INTEGER NOT NULL REFERENCES users(id),
            marked_at TEXT NOT NULL
        );
        CREATE INDEX report_key_images_consultation ON report_key_images(consultation_id, id);
        CREATE TABLE report_figures (
            report_version_id INTEGER NOT NULL REFERENCES report_versions(id),
            position INTEGER NOT NULL,
            series_instance_uid TEXT NOT NULL,
            sop_instance_uid TEXT NOT NULL,
            frame INTEGER NOT NULL,
            caption TEXT NOT NULL,
            label TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            png BLOB NOT NULL,
            PRIMARY KEY (report_version_id, position)
        );
        CREATE TRIGGER report_figures_immutable BEFORE UPDATE ON report_figures
            BEGIN SELECT RAISE(ABORT, 'signed report figures are immutable'); END;
        CREATE TRIGGER report_figures_no_delete BEFORE DELETE ON report_figures
            BEGIN SELECT RAISE(ABORT, 'signed report figures are immutable'); END;
        ALTER TABLE report_versions ADD COLUMN kos_sop_instance_uid TEXT;
        """
    )


@migrations()
def m036_qc_scores(db: sqlite_utils.Database) -> None:
    """QC scores per facility × exam item (modality, body part) × month (UTC, ``YYYY-MM``),
    stored by the monthly recomputation (service/quality/) so no page view recomputes them.
    ``reasons`` is a JSON object reason → count; the peer-review columns stay NULL until peer
    review exists. ``reports.technical_flagged``: a reader's mark that the study's technical
    parameters were wrong (counted per month). ``consultations_received`` finds a month's
    studies (turnaround_facts lost its index by received time in m022, as every event paid for
    it; a consultation's received time is written once)."""
    db.executescript(
        """
        CREATE TABLE qc_scores (
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            modality TEXT NOT NULL,
            body_part TEXT NOT NULL,
            month TEXT NOT NULL,
            studies INTEGER NOT NULL,
            rated INTEGER NOT NULL,
            good INTEGER NOT NULL,
            acceptable INTEGER NOT NULL,
            poor INTEGER NOT NULL,
            retakes INTEGER NOT NULL,
            flagged INTEGER NOT NULL,
            reasons TEXT NOT NULL DEFAULT '{}',
            peer_reviewed INTEGER,
            peer_agreement REAL,
            computed_at TEXT NOT NULL,
            PRIMARY KEY (facility_id, modality, body_part, month)
        );
        CREATE INDEX qc_scores_month ON qc_scores(month, facility_id);
        CREATE INDEX consultations_received ON consultations(received_at);
        ALTER TABLE reports ADD COLUMN technical_flagged INTEGER NOT NULL DEFAULT 0;
        """
    )


@migrations()
def m037_recognition(db: sqlite_utils.Database) -> None:
    """The mutual-recognition list (facility × exam item: listed or suspended, since when) and
    every change to it, append-only: added / suspended / restored, when, by whom (NULL: the
    monthly task), its reasons (JSON list of {code, figure, limit}), the totals behind it and
    the rules applied (JSON), so the history answers "since when, and why"."""
    db.executescript(
        """
        CREATE TABLE recognition (
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            modality TEXT NOT NULL,
            body_part TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('listed', 'suspended')),
            since TEXT NOT NULL,
            PRIMARY KEY (facility_id, modality, body_part)
        );
        CREATE TABLE recognition_changes (
            id INTEGER PRIMARY KEY,
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            modality TEXT NOT NULL,
            body_part TEXT NOT NULL,
            change TEXT NOT NULL CHECK (change IN ('added', 'suspended', 'restored')),
            at TEXT NOT NULL,
            by_user INTEGER REFERENCES users(id),
            reasons TEXT NOT NULL,
            totals TEXT NOT NULL,
            rules TEXT NOT NULL,
            months TEXT NOT NULL
        );
        CREATE INDEX recognition_changes_facility ON recognition_changes(facility_id, at);
        CREATE INDEX recognition_changes_at ON recognition_changes(at);
        CREATE TRIGGER recognition_changes_append_only BEFORE UPDATE ON recognition_changes
            BEGIN SELECT RAISE(ABORT, 'recognition changes are append-only'); END;
        """
    )


@migrations()
def m038_review_figures(db: sqlite_utils.Database) -> None:
    """Key images of a report signed for review (issue 19): rendered at the writer's signature,
    their digests under it, kept with the review until the reviewer issues the version (which
    then gets them in ``report_figures``), so the issued figures are the ones the writer signed."""
    db.executescript(
        """
        CREATE TABLE report_review_figures (
            review_id INTEGER NOT NULL REFERENCES report_reviews(id),
            position INTEGER NOT NULL,
            series_instance_uid TEXT NOT NULL,
            sop_instance_uid TEXT NOT NULL,
            frame INTEGER NOT NULL,
            caption TEXT NOT NULL,
            label TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            png BLOB NOT NULL,
            PRIMARY KEY (review_id, position)
        );
        CREATE TRIGGER report_review_figures_immutable BEFORE UPDATE ON report_review_figures
            BEGIN SELECT RAISE(ABORT, 'signed report figures are immutable'); END;
        """
    )


@migrations()
def m039_peer_review(db: sqlite_utils.Database) -> None:
    """Peer review of issued reports (issue 20 item 1): one row per issued version drawn (or
    picked by a manager) for a blind RADPEER review, with its claim lease, its score and, when
    the score opens one, its discrepancy (the first reader's answer, the manager's closing and
    the correcting version). ``peer_review_state`` keeps the per-install secret of the draw and
    the last version id drawn for, so each issued version is drawn exactly once."""
    db.executescript(
        """
        CREATE TABLE peer_review_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            secret BLOB NOT NULL,
            drawn_through INTEGER NOT NULL
        );
        INSERT INTO peer_review_state (id, secret, drawn_through)
            VALUES (1, randomblob(32), (SELECT COALESCE(MAX(id), 0) FROM report_versions));
        CREATE TABLE peer_reviews (
            id INTEGER PRIMARY KEY,
            report_version_id INTEGER NOT NULL UNIQUE REFERENCES report_versions(id),
            consultation_id INTEGER NOT NULL REFERENCES consultations(id),
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            reader_id INTEGER NOT NULL REFERENCES users(id),
            queue TEXT NOT NULL,
            origin TEXT NOT NULL CHECK (origin IN ('sampled', 'picked')),
            picked_by INTEGER REFERENCES users(id),
            assigned_at TEXT NOT NULL,
            claimed_by INTEGER REFERENCES users(id),
            claimed_at TEXT,
            claim_expires_at TEXT,
            reviewer_id INTEGER REFERENCES users(id),
            score INTEGER CHECK (score BETWEEN 1 AND 4),
            significance TEXT CHECK (significance IN ('a', 'b')),
            comment TEXT NOT NULL DEFAULT '',
            scored_at TEXT,
            discrepancy TEXT CHECK (discrepancy IN ('open', 'answered', 'closed')),
            answer TEXT NOT NULL DEFAULT '',
            answered_at TEXT,
            outcome TEXT NOT NULL DEFAULT '',
            closed_by INTEGER REFERENCES users(id),
            closed_at TEXT,
            correction_version_id INTEGER REFERENCES report_versions(id)
        );
        CREATE INDEX peer_reviews_open ON peer_reviews(scored_at, assigned_at);
        CREATE INDEX peer_reviews_reader ON peer_reviews(reader_id, scored_at);
        CREATE INDEX peer_reviews_discrepancy ON peer_reviews(discrepancy, facility_id);
        """
    )


@migrations()
def m041_hl7_preliminary_results(db: sqlite_utils.Database) -> None:
    """OBR-25 gains P (issue 19): a report released before review goes to the HIS as a
    preliminary result, the reviewed version that replaces it as F, a later correction as C.
    SQLite changes a CHECK only by rebuilding the table: same columns, same rows, same indexes."""
    db.executescript(
        """
        CREATE TABLE hl7_outbox_new (
            id INTEGER PRIMARY KEY,
            consultation_id INTEGER NOT NULL REFERENCES consultations(id),
            report_version_id INTEGER NOT NULL UNIQUE REFERENCES report_versions(id),
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            endpoint TEXT NOT NULL,
            result_status TEXT NOT NULL CHECK (result_status IN ('P', 'F', 'C')),
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            reason TEXT NOT NULL DEFAULT '',
            ack_code TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            last_attempt_at TEXT,
            sent_at TEXT
        );
        INSERT INTO hl7_outbox_new SELECT id, consultation_id, report_version_id, facility_id,
            endpoint, result_status, status, attempts, next_attempt_at, reason, ack_code,
            created_at, last_attempt_at, sent_at FROM hl7_outbox;
        DROP TABLE hl7_outbox;
        ALTER TABLE hl7_outbox_new RENAME TO hl7_outbox;
        CREATE INDEX hl7_outbox_due ON hl7_outbox(status, next_attempt_at);
        CREATE INDEX hl7_outbox_consultation ON hl7_outbox(consultation_id, id);
        """
    )


@migrations()
def m042_patient_identities(db: sqlite_utils.Database) -> None:
    """One patient across the consortium (issue 21): a small master patient index.

    A *local identity* is what one facility calls a patient (facility + local Patient ID, with
    the latest name, birth date and sex it sent). Every local identity belongs to exactly one
    *person*; linking two identities puts them in one person. ``patient_identifiers`` holds the
    checked national identifiers an identity carried (the only place the numbers are stored),
    ``patient_link_changes`` every link and unlink (automatic by identifier, or an
    administrator's), with the identities it moved so that it can be reversed, and
    ``patient_link_blocks`` the pairs an administrator separated, which no automatic link may
    join again. Existing consultations' patients become identities, one person each."""
    db.executescript(
        """
        CREATE TABLE patient_persons (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL
        );
        CREATE TABLE patient_identities (
            id INTEGER PRIMARY KEY,
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            patient_id TEXT NOT NULL,
            person_id INTEGER NOT NULL REFERENCES patient_persons(id),
            name TEXT NOT NULL DEFAULT '',
            birth_date TEXT NOT NULL DEFAULT '',
            sex TEXT NOT NULL DEFAULT '',
            first_seen_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (facility_id, patient_id)
        );
        CREATE INDEX patient_identities_person ON patient_identities(person_id);
        CREATE TABLE patient_identifiers (
            identity_id INTEGER NOT NULL REFERENCES patient_identities(id),
            system TEXT NOT NULL,
            value TEXT NOT NULL,
            source TEXT NOT NULL,
            disputed TEXT NOT NULL DEFAULT '',
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (identity_id, system, value)
        );
        CREATE INDEX patient_identifiers_value ON patient_identifiers(system, value);
        CREATE TABLE patient_link_changes (
            id INTEGER PRIMARY KEY,
            action TEXT NOT NULL CHECK (action IN ('link', 'unlink')),
            method TEXT NOT NULL CHECK (method IN ('identifier', 'administrator', 'reversal')),
            identity_id INTEGER NOT NULL REFERENCES patient_identities(id),
            other_identity_id INTEGER REFERENCES patient_identities(id),
            from_person_id INTEGER NOT NULL,
            to_person_id INTEGER NOT NULL,
            moved TEXT NOT NULL,
            identifier_system TEXT NOT NULL DEFAULT '',
            actor_id INTEGER REFERENCES users(id),
            reason TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL,
            reverses INTEGER REFERENCES patient_link_changes(id),
            reversed_by INTEGER REFERENCES patient_link_changes(id)
        );
        CREATE INDEX patient_link_changes_identity ON patient_link_changes(identity_id, at);
        CREATE INDEX patient_link_changes_other ON patient_link_changes(other_identity_id, at);
        CREATE TABLE patient_link_blocks (
            identity_id INTEGER NOT NULL REFERENCES patient_identities(id),
            other_identity_id INTEGER NOT NULL REFERENCES patient_identities(id),
            change_id INTEGER NOT NULL REFERENCES patient_link_changes(id),
            PRIMARY KEY (identity_id, other_identity_id)
        );
        """
    )
    groups = db.execute(
        """
        SELECT c.facility_id, c.patient_id, MIN(c.created_at) AS first_seen,
               MAX(c.updated_at) AS updated
        FROM consultations c WHERE c.patient_id != ''
        GROUP BY c.facility_id, c.patient_id ORDER BY MIN(c.id)
        """
    ).fetchall()
    for facility_id, patient_id, first_seen, updated in groups:
        latest = db.execute(
            """
            SELECT c.patient_name, c.patient_birth_date, c.patient_sex
            FROM consultations c WHERE c.facility_id = ? AND c.patient_id = ?
            ORDER BY c.id DESC LIMIT 1
            """,
            [facility_id, patient_id],
        ).fetchone()
        person = db.execute(
            "INSERT INTO patient_persons (created_at) VALUES (?)", [first_seen]
        ).lastrowid
        db.execute(
            """
            INSERT INTO patient_identities (facility_id, patient_id, person_id, name,
                birth_date, sex, first_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [facility_id, patient_id, person, *latest, first_seen, updated],
        )


@migrations()
def m043_patient_link_candidates(db: sqlite_utils.Database) -> None:
    """The review list of likely matches (issue 21): two local identities whose birth date, sex
    and name (ideographic or phonetic) agree but which share no national identifier are never
    linked automatically; they are kept here, one row per pair (the lower identity id first),
    for an administrator to link or reject, with who decided, when and why. The index on
    (birth_date, sex) is the one read an identity's recording makes to find them."""
    db.executescript(
        """
        CREATE TABLE patient_link_candidates (
            id INTEGER PRIMARY KEY,
            identity_id INTEGER NOT NULL REFERENCES patient_identities(id),
            other_identity_id INTEGER NOT NULL REFERENCES patient_identities(id),
            score REAL NOT NULL,
            reasons TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'linked', 'rejected')),
            found_at TEXT NOT NULL,
            decided_by INTEGER REFERENCES users(id),
            decided_at TEXT,
            reason TEXT NOT NULL DEFAULT '',
            change_id INTEGER REFERENCES patient_link_changes(id),
            UNIQUE (identity_id, other_identity_id),
            CHECK (identity_id < other_identity_id)
        );
        CREATE INDEX patient_link_candidates_status ON patient_link_candidates(status, id);
        CREATE INDEX patient_link_candidates_other ON patient_link_candidates(other_identity_id);
        CREATE INDEX patient_identities_born ON patient_identities(birth_date, sex);
        """
    )


@migrations()
def m044_repeat_alerts(db: sqlite_utils.Database) -> None:
    """Repeat-exam alerts (issue 21): a request or a study of an exam item the same person had
    within the item's window (worklist rules ``[repeat_exams]``), and what was decided.

    ``matches`` is the prior exams as the requester was shown them (JSON: consultation,
    facility, when, impression, recognition). ``decision``: ``pending`` (shown on the request
    form, not yet answered), ``proceeded`` (filed anyway, with ``reason``), ``withdrawn``
    (nothing filed: a repeat avoided), ``recorded`` (an HL7 or FHIR order or an arriving study,
    which cannot be asked first). ``consultation_id`` is the consultation filed, if any."""
    db.executescript(
        """
        CREATE TABLE repeat_alerts (
            id INTEGER PRIMARY KEY,
            facility_id INTEGER NOT NULL REFERENCES facilities(id),
            patient_id TEXT NOT NULL,
            modality TEXT NOT NULL,
            body_part TEXT NOT NULL,
            window_days INTEGER NOT NULL,
            matches TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('web', 'api', 'hl7', 'fhir', 'ingest')),
            decision TEXT NOT NULL
                CHECK (decision IN ('pending', 'proceeded', 'withdrawn', 'recorded')),
            reason TEXT NOT NULL DEFAULT '',
            user_id INTEGER REFERENCES users(id),
            created_at TEXT NOT NULL,
            decided_at TEXT,
            consultation_id INTEGER REFERENCES consultations(id)
        );
        CREATE INDEX repeat_alerts_item
            ON repeat_alerts(facility_id, modality, body_part, created_at);
        CREATE INDEX repeat_alerts_consultation ON repeat_alerts(consultation_id);
        """
    )


@migrations()
def m045_patient_record_reasons(db: sqlite_utils.Database) -> None:
    """The consortium record (issue 21 item 4): a doctor states why they open a patient's
    record beyond their own facility's studies; the reason covers that patient for that session
    (or API token) until ``expires_at``. Kept, never deleted: the access log cites it."""
    db.executescript(
        """
        CREATE TABLE patient_record_reasons (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            session_id INTEGER,
            api_token_id INTEGER,
            identity_id INTEGER NOT NULL REFERENCES patient_identities(id),
            category TEXT NOT NULL,
            text TEXT NOT NULL,
            stated_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        CREATE INDEX patient_record_reasons_caller
            ON patient_record_reasons(identity_id, user_id, expires_at);
        """
    )


@migrations()
def m046_turnaround_received_index(db: sqlite_utils.Database) -> None:
    """The dashboard's review stages select the consultations received in the period
    (``turnaround.review_stage_seconds``): without an index each request read every fact, a
    scan that grows with every year kept (bench/scale.py: ~170 ms at 200,000 consultations).
    The same migration, by name, on PostgreSQL (service/storage/postgres/schema.py)."""
    db.executescript(
        "CREATE INDEX turnaround_facts_received ON turnaround_facts(received_at, facility_id);"
    )


#: m047's statements, the same on both engines (service/storage/postgres/schema.py), but for
#: the integer's name: ``{integer}`` is INTEGER in SQLite and BIGINT in PostgreSQL.
LEADER_FENCING_SQL = """
CREATE TABLE lease_epochs (
    name TEXT PRIMARY KEY,
    epoch {integer} NOT NULL,
    holder TEXT NOT NULL,
    taken_at TEXT NOT NULL
);
ALTER TABLE report_deliveries ADD COLUMN claimed_at TEXT;
ALTER TABLE hl7_outbox ADD COLUMN claimed_at TEXT;
"""


@migrations()
def m047_leader_fencing(db: sqlite_utils.Database) -> None:
    """The epoch of each lease among replicas, raised at each taking, and the claim a worker
    puts on a report delivery or an HL7 result before sending it (service/storage/fencing.py):
    an old leader finishing a round must neither send what the new one sends nor take more.
    On one host the epochs stay empty and a claim only marks what is in flight."""
    db.executescript(LEADER_FENCING_SQL.format(integer="INTEGER"))
