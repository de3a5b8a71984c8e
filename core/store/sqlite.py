"""The embedded gallery: a SQLite file of people, their photos' face crops and face encodings
(:class:`core.store.gallery.Gallery`; its invariants hold, and these):

Invariants:
- Every write is one ``BEGIN IMMEDIATE`` transaction: a person and the photos enrolled with them
  appear together or not at all, even when the process is killed mid-write (SQLite's journal).
- Safe for several threads (one connection per :class:`SqliteGallery`, guarded by a lock) and several
  processes or sessions (WAL mode, a busy timeout, SQLite's file locks).
- :meth:`Gallery.version` grows with every committed change, from any connection, so readers
  can cache what they derived from the gallery (the matcher of the live processor).
- Nothing is pickled: encodings are little-endian float64 bytes, thumbnails JPEG bytes.
- Names are validated by :func:`validate_name` before anything is written, and looked up by
  :func:`name_key` (NFC, then casefold): "JOSÉ ÑÚÑEZ", "José Ñúñez" and its decomposed (NFD)
  spelling are one person for enroll, rename, forget and every lookup.
- Opening a file never changes it unless it is a gallery: another application's SQLite file is
  refused untouched (its tables are checked before any write). A missing file is created by the
  first write only, so a refused enrollment leaves no file and no folder behind.
- ``readonly=True`` opens the file read-only (``mode=ro``): reading commands work on a gallery
  they may not write.
- Deleting (forget, a photo, replaced encodings, an old name) leaves nothing recoverable in the
  file or beside it: ``secure_delete`` zeroes the freed content, and a ``TRUNCATE`` checkpoint
  copies the zeroed pages into the file and empties the write-ahead log even while other
  connections are open (it waits for their reads to finish, up to the busy timeout).
- Every encoding is stored with the name of the encoder that made it (``photos.encoder``);
  encodings of different encoders are never compared (:meth:`Gallery.encodings` filters by
  encoder). Files written before that column existed are upgraded on opening: their encodings
  are dlib's, the only encoder then.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np

from core.faces import Box
from core.store.gallery import (
    ENCODING_SIZE,
    Encodings,
    Gallery,
    GalleryError,
    default_gallery_location,
    name_key,
)

ENCODING_DTYPE = np.dtype("<f8")
APPLICATION_ID = 0x564C4142  # "VLAB" in the file header: this file is a Vision Lab gallery
SCHEMA = (  # idempotent statements: several processes may initialise one file at once
    """CREATE TABLE IF NOT EXISTS people (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        created REAL NOT NULL,
        kind TEXT NOT NULL DEFAULT 'person',
        first_seen REAL,
        last_seen REAL,
        visits INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS photos (
        id INTEGER PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        source TEXT NOT NULL,
        box TEXT NOT NULL,
        thumbnail BLOB NOT NULL,
        encoding BLOB NOT NULL,
        encoder TEXT NOT NULL DEFAULT 'dlib',
        created REAL NOT NULL,
        quality REAL NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS photos_by_person ON photos(person_id)",
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT OR IGNORE INTO settings(key, value) VALUES ('version', '0')",
)
# The columns a file must have to be taken for a gallery (those of the first released version);
# newer ones (people.key, photos.encoder) are added by Gallery._upgrade.
REQUIRED_COLUMNS = {
    "people": {"id", "name", "created"},
    "photos": {"id", "person_id", "source", "box", "thumbnail", "encoding", "created"},
    "settings": {"key", "value"},
}
CURRENT_COLUMNS = {"people": {"key", "kind", "first_seen", "last_seen", "visits"}, "photos": {"encoder", "quality"}}
# Columns added after the first release that need no filling: (table, column, definition).
ADDED_COLUMNS = (
    ("people", "kind", "TEXT NOT NULL DEFAULT 'person'"),
    ("people", "first_seen", "REAL"),
    ("people", "last_seen", "REAL"),
    ("people", "visits", "INTEGER NOT NULL DEFAULT 0"),
    ("photos", "quality", "REAL NOT NULL DEFAULT 0"),
)


class SqliteGallery(Gallery):
    """One gallery file; share an instance between threads freely.

    The connection is opened when the file exists (at once, or at the first read after another
    process created it) or by the first write (which creates it); until then every read sees an
    empty gallery.
    """

    def __init__(self, path: str | Path | None = None, readonly: bool = False) -> None:
        self.path = Path(path if path is not None else default_gallery_location())
        self.readonly = readonly
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a folder; the gallery must be a file")
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        with self._lock:
            self._connection(create=False)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @property
    def location(self) -> str:
        return str(self.path)

    # --- reading -------------------------------------------------------------------------
    def encodings(self, encoder: str | None = None) -> Encodings:
        with self._lock:
            db = self._connection(create=False)
            if db is None:
                return Encodings((), np.zeros((0, ENCODING_SIZE)), 0)
            with _Transaction(db, immediate=False):
                version = int(db.execute("SELECT value FROM settings WHERE key='version'").fetchone()[0])
                rows = db.execute(
                    "SELECT p.name, ph.encoding, ph.id FROM photos ph JOIN people p ON p.id = ph.person_id "
                    "WHERE ?1 IS NULL OR ph.encoder = ?1 ORDER BY ph.id",
                    (encoder,),
                ).fetchall()
        matrix = np.zeros((len(rows), ENCODING_SIZE))
        for i, (_, blob, _) in enumerate(rows):
            matrix[i] = np.frombuffer(blob, dtype=ENCODING_DTYPE)
        return Encodings(tuple(row[0] for row in rows), matrix, version, tuple(row[2] for row in rows))

    # --- internals -----------------------------------------------------------------------
    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """The open connection; else opens the file if it exists (checked first: a file that is
        not a gallery is refused untouched), or creates it when ``create``; None when absent.
        Call with the lock held."""
        if self._db is not None:
            return self._db
        if not self.path.exists() and not create:
            return None
        state = _inspect(self.path) if self.path.exists() else "empty"
        if self.readonly:
            if state == "empty":
                return None  # nothing to read yet
            if state == "old":
                raise GalleryError(
                    f"{self.path} was written by an older version of Vision Lab and must be upgraded by a command "
                    "that may write it (enroll, forget, or the People page)"
                )
            self._db = _connect(self.path, readonly=True)
            return self._db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = _connect(self.path, readonly=False)
        if state != "current":
            try:
                with _Transaction(db, immediate=True):
                    _initialise(db)
            except Exception:
                db.close()
                raise
        self._db = db
        return db

    @contextmanager
    def _writing(self, erases: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction that bumps the version (creating the file if needed); one that
        ``erases`` changes what exists, so it never creates the file, and afterwards checkpoints
        the freed pages into the file and truncates the write-ahead log: no deleted byte stays
        readable."""
        if self.readonly:
            raise GalleryError(f"{self.path} was opened read-only")
        with self._lock:
            db = self._connection(create=not erases)
            if db is None:
                raise GalleryError(f"{self.path}: there is no gallery there yet")
            with _Transaction(db, immediate=True):
                yield db
                db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key='version'")
            if erases:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # waits for readers (busy timeout)

    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            db = self._connection(create=False)
            return [] if db is None else db.execute(sql, parameters).fetchall()

    def _q(self, sql: str) -> str:
        return sql.replace("{t}", "")

    def _box_value(self, box: Box) -> str:
        return json.dumps([int(v) for v in box])

    def _box_from(self, value: object) -> Box:
        return Box(*json.loads(value))

    def _unique_violations(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.IntegrityError,)

    def _encoding_value(self, encoding: np.ndarray) -> bytes:
        return np.asarray(encoding, dtype=ENCODING_DTYPE).tobytes()




class _Transaction:
    """``BEGIN IMMEDIATE`` (writer) or ``BEGIN`` (consistent read) ... ``COMMIT``, ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection, immediate: bool) -> None:
        self._db = db
        self._immediate = immediate

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE" if self._immediate else "BEGIN")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            db = _open_read_only(path)
            db.execute("PRAGMA query_only=ON")
        else:
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA secure_delete=ON")  # deleted photos and encodings are overwritten with zeros
        db.execute("PRAGMA foreign_keys=ON")
        return db
    except sqlite3.DatabaseError as error:
        raise GalleryError(f"{path} is not a usable gallery file ({error})") from error


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write ``path``. In WAL mode, reading needs the ``-shm`` file
    beside it; where nobody may create it (a read-only folder), the file is opened as immutable:
    nothing can change it then, and a write-ahead log left by a crash is not read."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.access(path.parent, os.W_OK):
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=30, isolation_level=None, check_same_thread=False)


def _inspect(path: Path) -> str:
    """What ``path`` holds, read without changing it: "empty" (no tables yet), "old" (a gallery
    of an earlier version, to upgrade) or "current"; :class:`GalleryError` for anything else."""
    try:
        with closing(_open_read_only(path)) as db:
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
            columns = {table: {row[1] for row in db.execute(f"PRAGMA table_info({table!r})")} for table in tables}
    except sqlite3.DatabaseError as error:
        raise GalleryError(f"{path} is not a usable gallery file ({error})") from error
    if application_id not in (0, APPLICATION_ID):
        raise GalleryError(f"{path} belongs to another application (SQLite application id {application_id:#x}); "
                           "choose another gallery file")  # fmt: skip
    if not tables:
        return "empty"
    if set(tables) != set(REQUIRED_COLUMNS) or any(not REQUIRED_COLUMNS[t] <= columns[t] for t in tables):
        raise GalleryError(f"{path} is not a Vision Lab gallery (it holds the tables {', '.join(sorted(tables))}); "
                           "it was left untouched: choose another gallery file")  # fmt: skip
    current = application_id == APPLICATION_ID and all(CURRENT_COLUMNS[t] <= columns[t] for t in CURRENT_COLUMNS)
    return "current" if current else "old"


def _initialise(db: sqlite3.Connection) -> None:
    """Create the tables, or upgrade an earlier version's (inside the caller's transaction):
    ``photos.encoder`` (older encodings are dlib's, the only encoder then) and ``people.key``
    (filled by :func:`name_key`; people whose names then coincide, possible only through the
    old ASCII-only comparison, become one person with all their photos)."""
    for statement in SCHEMA:
        db.execute(statement)
    columns = {table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")} for table in CURRENT_COLUMNS}
    if "encoder" not in columns["photos"]:
        db.execute("ALTER TABLE photos ADD COLUMN encoder TEXT NOT NULL DEFAULT 'dlib'")
    if "key" not in columns["people"]:
        db.execute("ALTER TABLE people ADD COLUMN key TEXT NOT NULL DEFAULT ''")
        first_of: dict[str, int] = {}
        for person_id, name in db.execute("SELECT id, name FROM people ORDER BY id").fetchall():
            key = name_key(name)
            if key in first_of:
                db.execute("UPDATE photos SET person_id=? WHERE person_id=?", (first_of[key], person_id))
                db.execute("DELETE FROM people WHERE id=?", (person_id,))
            else:
                first_of[key] = person_id
                db.execute("UPDATE people SET key=? WHERE id=?", (key, person_id))
    for table, column, definition in ADDED_COLUMNS:
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS people_by_key ON people(key)")
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
