"""One SQLite file per workspace home: connection, migrations, writes, change detection.

* WAL where the filesystem supports it, the rollback journal otherwise.
* Every read-modify-write runs inside ``BEGIN IMMEDIATE`` (see :meth:`Database.write`), with a
  busy timeout, so concurrent writers queue instead of failing.
* Migrations are a plain list of idempotent functions; ``PRAGMA user_version`` counts them.
* A corrupt or unreadable file raises :class:`StorageError` and is left exactly as it was.
  Only a *missing* file means "new workspace": it is built under a temporary name and linked
  into place whole, so no process ever sees a half-made one; an existing file that is not
  ours (0 bytes, another application's SQLite file) is refused untouched, journal mode too.
* The home and the file are trusted only when owned by the user, not group/world-writable and
  not symlinks (OpenSSH's rule), else :class:`StorageError` naming the ``chmod``/``chown``.
* :class:`ChangeWatch` is the cheap cross-process change check (``PRAGMA data_version`` and
  a revision counter per kind of data).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ._private import check_private, make_private_dir
from .errors import StorageError

__all__ = ["MIGRATIONS", "ChangeWatch", "Database", "make_private_dir"]

log = logging.getLogger("viagent_jupyter.db")

DB_NAME = "viagent.sqlite3"
BUSY_TIMEOUT_S = 10.0


def _m1_initial(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS providers (
            id TEXT PRIMARY KEY,
            data TEXT NOT NULL,
            version INTEGER NOT NULL,
            position INTEGER NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS credentials (
            provider_id TEXT PRIMARY KEY,
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            key_id TEXT NOT NULL,
            hint TEXT,
            updated_at TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")


def _m2_models_and_usage(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS model_cache (
            provider_id TEXT PRIMARY KEY,
            fetched_at REAL NOT NULL,
            data TEXT NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS usage (
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL,
            errors INTEGER NOT NULL DEFAULT 0,
            last_used REAL,
            PRIMARY KEY (provider, model)
        )"""
    )


def _m_history(conn: sqlite3.Connection) -> None:
    """The record of every chat (history.py), its FTS5 index when SQLite has FTS5, and the
    ``--chat`` threads that outlive a kernel."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS history (
            id INTEGER PRIMARY KEY,
            created_at REAL NOT NULL,
            source TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            response_model TEXT,
            system TEXT,
            messages TEXT,
            prompt TEXT NOT NULL DEFAULT '',
            answer TEXT NOT NULL DEFAULT '',
            reasoning TEXT,
            steps TEXT,
            finish_reason TEXT,
            usage TEXT,
            cost REAL,
            ttft REAL,
            total_time REAL,
            notebook TEXT,
            cell INTEGER,
            thread TEXT,
            group_id TEXT,
            error TEXT,
            error_code TEXT,
            settings TEXT
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS history_created ON history (created_at)")
    conn.execute("CREATE INDEX IF NOT EXISTS history_group ON history (group_id)")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS history_threads (
            name TEXT PRIMARY KEY,
            messages TEXT NOT NULL,
            updated_at REAL NOT NULL
        )"""
    )
    try:
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS history_fts USING fts5("
                     "prompt, answer, content='history', content_rowid='id')")
    except sqlite3.OperationalError as exc:  # SQLite built without FTS5: search uses LIKE
        log.info("no FTS5 in this SQLite (%s): history search will use LIKE", _describe(exc))
        return
    conn.execute("""CREATE TRIGGER IF NOT EXISTS history_ai AFTER INSERT ON history BEGIN
        INSERT INTO history_fts (rowid, prompt, answer) VALUES (new.id, new.prompt, new.answer);
        END""")
    conn.execute("""CREATE TRIGGER IF NOT EXISTS history_ad AFTER DELETE ON history BEGIN
        INSERT INTO history_fts (history_fts, rowid, prompt, answer)
        VALUES ('delete', old.id, old.prompt, old.answer);
        END""")


def _m_cost_prices_budgets(conn: sqlite3.Connection) -> None:
    """Exact money (integer 1e-12 USD: sums never drift), per-day usage, prices, budgets.
    ``usage.cost`` (REAL) is kept as it was but no longer read or written."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(usage)")}
    if "cost_pusd" not in columns:
        conn.execute("ALTER TABLE usage ADD COLUMN cost_pusd INTEGER")
        conn.execute("UPDATE usage SET cost_pusd = CAST(ROUND(cost * 1e12) AS INTEGER) "
                     "WHERE cost IS NOT NULL")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS usage_daily (
            day TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost_pusd INTEGER,
            errors INTEGER NOT NULL DEFAULT 0,
            last_used REAL,
            PRIMARY KEY (day, provider, model)
        )"""
    )
    # usage from before this migration goes to the UTC day it was last used (per-day sums
    # start here; all-time totals stay whole)
    conn.execute(
        "INSERT OR IGNORE INTO usage_daily (day, provider, model, requests, prompt_tokens, "
        "completion_tokens, cost_pusd, errors, last_used) SELECT "
        "date(COALESCE(last_used, 0), 'unixepoch'), provider, model, requests, prompt_tokens, "
        "completion_tokens, cost_pusd, errors, last_used FROM usage "
        "WHERE typeof(last_used) IN ('real', 'integer', 'null')"
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS price_overrides (
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (provider, model)
        )"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS price_catalogue (
            url TEXT PRIMARY KEY,
            fetched_at REAL NOT NULL,
            data TEXT NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS budgets (
            period TEXT NOT NULL,
            provider TEXT NOT NULL,
            limit_pusd INTEGER NOT NULL,
            soft REAL NOT NULL,
            strict INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (period, provider)
        )"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS budget_holds (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            provider TEXT NOT NULL,
            amount_pusd INTEGER NOT NULL,
            created_at REAL NOT NULL
        )"""
    )


#: The sampling temperature every provider row stored before settings could be unset.
OLD_DEFAULT_TEMPERATURE = 0.7


def _m_unset_defaults_and_refusals(conn: sqlite3.Connection) -> None:
    """Settings became "unset = the provider's default" (issue 12).

    * Rows written before it hold ``temperature: 0.7`` whether or not the user chose it (the
      whole ``ModelSettings`` was stored, with its 0.7 default). A stored 0.7 cannot be told
      apart from a deliberate one, so the heuristic is: exactly 0.7 was the untouched default
      and becomes unset; any other value was the user's and stays. (Someone who wants 0.7
      sets it again.) Unparseable rows are left for the store to report.
    * ``param_refusals``: what a provider refused for a model (see ``refusals.py``).
    * ``usage.unreported``: requests whose usage the provider did not report, so the stats
      can say "unknown" instead of 0 tokens.
    """
    import json

    for pid, data in conn.execute("SELECT id, data FROM providers").fetchall():
        try:
            fields = json.loads(data)
        except (TypeError, ValueError):
            continue
        settings = fields.get("settings") if isinstance(fields, dict) else None
        if isinstance(settings, dict) and settings.get("temperature") == OLD_DEFAULT_TEMPERATURE:
            settings.pop("temperature")
            conn.execute("UPDATE providers SET data = ? WHERE id = ?", (json.dumps(fields), pid))
    conn.execute(
        """CREATE TABLE IF NOT EXISTS param_refusals (
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            param TEXT NOT NULL,
            action TEXT NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (provider, model, param)
        )"""
    )
    columns = {row[1] for row in conn.execute("PRAGMA table_info(usage)").fetchall()}
    if "unreported" not in columns:
        conn.execute("ALTER TABLE usage ADD COLUMN unreported INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m1_initial, _m2_models_and_usage, _m_history, _m_cost_prices_budgets,
    _m_unset_defaults_and_refusals,
]


def _describe(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Database:
    """A thread-safe wrapper around one SQLite connection to ``<home>/viagent.sqlite3``."""

    def __init__(self, home: Path, journal_mode: str | None = None) -> None:
        self.home = home
        self.path = home / DB_NAME
        self._lock = threading.RLock()
        try:
            check_private(home, "workspace home", StorageError)
            make_private_dir(home)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the workspace directory {home} ({_describe(exc)}). "
                "Set VIAGENT_HOME to a writable directory."
            ) from None
        check_private(home, "workspace home", StorageError)
        self._create_file()
        self._check_ours_before_open()
        try:
            self._conn = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._storage_error("open", exc) from None
        if journal_mode is None:
            from ._settings import Settings

            journal_mode = Settings.from_env().journal_mode
        try:
            self._open_with_retries(journal_mode)
        except StorageError:
            self._conn.close()
            raise
        except sqlite3.Error as exc:
            self._conn.close()
            raise self._storage_error("open", exc) from None

    # -- opening --------------------------------------------------------------------------
    def _open_with_retries(self, journal_mode: str) -> None:
        """Check, set the journal mode and migrate. SQLite may answer "locked" at once,
        without its busy handler, while another connection switches a fresh file to WAL or
        recovers it: retry those for up to the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.005
        while True:
            try:
                self._check_readable()
                self.journal_mode = self._set_journal_mode(journal_mode)
                self._migrate()
                self._data_version = self._read_data_version()
                self._generation = 0
                return
            except (sqlite3.OperationalError, StorageError) as exc:
                text = str(exc)
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _create_file(self) -> None:
        """A missing database is built whole under a temporary name (0600, every migration
        applied) and linked into place: exactly one process creates it, and nobody ever sees a
        file that exists but is not yet ours."""
        if self.path.exists() or self.path.is_symlink():
            return
        tmp = self.home / f".{DB_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            conn = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute("BEGIN IMMEDIATE")
                for migration in MIGRATIONS:
                    migration(conn)
                conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
                conn.execute("COMMIT")
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):  # another process was first: use its
                os.link(tmp, self.path)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"Cannot create the database {self.path} ({_describe(exc)}). "
                "Check the disk and permissions, or set VIAGENT_HOME elsewhere."
            ) from None
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _check_ours_before_open(self) -> None:
        """Refuse, before SQLite touches it, a file that cannot be a viagent database."""
        check_private(self.path, "database", StorageError)
        if not self.path.is_file():
            return  # SQLite's own open error names it
        if not os.access(self.path, os.R_OK | os.W_OK):
            raise StorageError(
                f"The database {self.path} is not readable and writable by you; "
                "fix its permissions (chmod 600) or set VIAGENT_HOME elsewhere."
            )
        with open(self.path, "rb") as fh:
            head = fh.read(16)
        if not head:
            raise StorageError(
                f"The database {self.path} is empty (0 bytes): it is not a viagent_jupyter "
                "database and was left as it is; move it aside to start afresh or restore a "
                "backup."
            )

    def _check_readable(self) -> None:
        # Reading the schema touches the header and the first page: a non-database or a
        # damaged header fails here, before anything is written.
        self._conn.execute("PRAGMA schema_version").fetchone()
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StorageError(
                f"The database {self.path} was written by a newer viagent_jupyter "
                f"(schema {version}, this one knows {len(MIGRATIONS)}); upgrade the package."
            )
        tables = {str(r[0]) for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version < 1 or not {"providers", "credentials", "meta"} <= tables:
            raise StorageError(
                f"The database {self.path} is another application's SQLite file (no "
                "viagent_jupyter schema); it was left as it is. Set VIAGENT_HOME to another "
                "directory, or move the file aside."
            )

    def _set_journal_mode(self, wanted: str) -> str:
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        mode = "delete"
        if wanted.lower() == "wal":
            try:
                row = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
                mode = str(row[0]).lower() if row else "delete"
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise
                log.warning("WAL is not available for %s (%s); using a rollback journal",
                            self.path, _describe(exc))
                mode = "delete"
        if mode != "wal":
            self._conn.execute("PRAGMA journal_mode=DELETE")
            self._conn.execute("PRAGMA synchronous=FULL")
            mode = "delete"
        else:
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        return mode

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            return
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for index in range(version, len(MIGRATIONS)):
                MIGRATIONS[index](conn)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def _storage_error(self, action: str, exc: BaseException) -> StorageError:
        text = _describe(exc)
        if "locked" in text or "busy" in text:
            return StorageError(
                f"The database {self.path} stayed locked by another process for "
                f"{BUSY_TIMEOUT_S:.0f} s while trying to {action}; retry, or find the process "
                "holding it."
            )
        if "readonly" in text or "read-only" in text:
            return StorageError(
                f"Cannot {action}: the database {self.path} is read-only ({text}). "
                "Nothing was changed; make the workspace directory writable."
            )
        if "disk" in text and "full" in text:
            return StorageError(
                f"Cannot {action}: the disk holding {self.path} is full. Nothing was changed; "
                "free some space and retry."
            )
        return StorageError(
            f"Cannot {action} the database {self.path} ({text}). The file was left as it is; "
            "move it aside to start afresh or restore a backup."
        )

    # -- use --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise self._storage_error("read", exc) from None

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._storage_error("write", exc) from None
            try:
                yield conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._storage_error("write", exc) from None
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise self._storage_error("save", exc) from None

    def _read_data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def generation(self) -> int:
        """A counter that grows whenever another connection (another kernel, process or
        workspace) has committed since the last look. Cheap: one ``PRAGMA data_version``.
        Each consumer compares it with the value it saw last."""
        with self._lock:
            try:
                version = self._read_data_version()
            except sqlite3.Error as exc:
                raise self._storage_error("check", exc) from None
            if version != self._data_version:
                self._data_version = version
                self._generation += 1
            return self._generation

    def bump(self, conn: sqlite3.Connection, counter: str) -> None:
        """Inside a write: advance a named revision (``providers_rev``, ``usage_rev``) so
        readers reload only the part that changed."""
        conn.execute(
            "INSERT INTO meta VALUES (?, '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
            (counter,),
        )

    def get_meta(self, key: str) -> str | None:
        with self.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0]) if row[0] is not None else None

    def integrity_check(self) -> str:
        with self.read() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()


class ChangeWatch:
    """Tells one reader whether the area behind a revision counter (``providers_rev``,
    ``usage_rev``) changed since it last looked: cheap when nothing changed anywhere (one
    ``PRAGMA data_version``), one meta read when something else did."""

    def __init__(self, db: Database, counter: str) -> None:
        self._db = db
        self._counter = counter
        self._generation = -1
        self._rev: str | None = None

    def changed(self, force: bool = False) -> bool:
        """True (and remembered) when another connection advanced the counter."""
        generation = self._db.generation()
        if generation == self._generation and not force:
            return False
        self._generation = generation
        rev = self._db.get_meta(self._counter)
        if rev == self._rev and not force:
            return False
        self._rev = rev
        return True

    def saw_own_write(self) -> None:
        """After this reader's own write (which ``data_version`` does not report)."""
        self._rev = self._db.get_meta(self._counter)
