"""The shared gallery: PostgreSQL with pgvector, for several app servers at once
(:class:`core.store.gallery.Gallery`; its invariants hold, and these):

Invariants:
- Everything lives in the schema ``vision_lab`` of the database the URL names; a schema of that
  name that Vision Lab did not create is refused untouched. Opening creates nothing: the first
  write creates the schema (and ``CREATE EXTENSION vector`` when it is missing), under an
  advisory lock, so servers starting together do not race.
- Encodings are ``vector(128)`` (float32) with one HNSW index (L2) per encoder, a partial index
  ``WHERE encoder = '...'``: the nearest-neighbour query runs in the database, and a server's
  memory does not grow with the gallery (:meth:`PostgresGallery.index`).
- Two servers enrolling the same new name at once give one person (a unique key and
  ``INSERT ... ON CONFLICT``); :meth:`version` is one indexed read that every server polls.
- A lost database raises :class:`GalleryUnavailable` (never hangs longer than
  :data:`CONNECT_TIMEOUT_S`); the next call after :data:`RETRY_AFTER_S` reconnects by itself.
- Deleting removes rows in one transaction. Unlike the SQLite store, PostgreSQL does not zero
  freed bytes: they stay in its files until VACUUM and later writes reuse the space.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from core.faces import Box
from core.store.gallery import (
    ENCODING_SIZE,
    Encodings,
    Gallery,
    GalleryError,
    GalleryUnavailable,
    check_encoder,
    name_key,
    shown,
)

SCHEMA_NAME = "vision_lab"
MARK = "Vision Lab gallery, schema 1"  # the schema's comment: this schema is ours
KNOWN_ENCODERS = ("sface", "dlib")  # their HNSW indexes are made with the schema
CONNECT_TIMEOUT_S = 3
RETRY_AFTER_S = 1.0
EF_SEARCH_ENV = "VISION_LAB_HNSW_EF_SEARCH"
# HNSW candidates per query (pgvector's default is 40): more is slower and finds the true nearest
# more often; the default is chosen by bench/gallery.py's sweep at 1M encodings.
EF_SEARCH = int(os.environ.get(EF_SEARCH_ENV, "") or 200)
SEARCH_ROWS = (32, 256)  # photos fetched to find 2 distinct people: 32, then 256 when one person fills them
INIT_LOCK = 0x564C4142  # pg_advisory_xact_lock key: one server creates the schema at a time
SCHEMA = (
    f"CREATE SCHEMA {SCHEMA_NAME}",
    f"COMMENT ON SCHEMA {SCHEMA_NAME} IS '{MARK}'",
    f"""CREATE TABLE {SCHEMA_NAME}.people (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        key TEXT NOT NULL UNIQUE,
        created DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL DEFAULT 'person',
        first_seen DOUBLE PRECISION,
        last_seen DOUBLE PRECISION,
        visits INTEGER NOT NULL DEFAULT 0
    )""",
    f"""CREATE TABLE {SCHEMA_NAME}.photos (
        id BIGSERIAL PRIMARY KEY,
        person_id BIGINT NOT NULL REFERENCES {SCHEMA_NAME}.people(id) ON DELETE CASCADE,
        source TEXT NOT NULL,
        box INTEGER[4] NOT NULL,
        thumbnail BYTEA NOT NULL,
        encoding VECTOR({ENCODING_SIZE}) NOT NULL,
        encoder TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        quality DOUBLE PRECISION NOT NULL DEFAULT 0
    )""",
    f"CREATE INDEX photos_by_person ON {SCHEMA_NAME}.photos(person_id)",
    f"CREATE TABLE {SCHEMA_NAME}.settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"INSERT INTO {SCHEMA_NAME}.settings(key, value) VALUES ('version', '0')",
)


def vector_text(encoding: np.ndarray) -> str:
    """pgvector's text form of an encoding: ``[v1,v2,...]``."""
    return "[" + ",".join(f"{v:.9g}" for v in np.asarray(encoding, dtype=np.float64)) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=np.float64)


def _driver():
    try:
        import psycopg
    except ImportError as error:  # pragma: no cover - psycopg is in requirements.txt
        raise GalleryError("a postgresql:// gallery needs the psycopg package (pip install 'psycopg[binary]')") from error
    return psycopg


class PostgresGallery(Gallery):
    """A gallery in a PostgreSQL database with pgvector; share an instance between threads (one
    connection, guarded by a lock)."""

    def __init__(self, url: str, readonly: bool = False) -> None:
        self.url = url
        self.readonly = readonly
        self._lock = threading.RLock()
        self._db = None
        self._failed_at = -np.inf
        self._failure = ""
        self._state = "unknown"  # "empty" (no schema yet) or "current", once seen
        self._indexed: set[str] = set()  # connected by the first call, not here: opening never fails

    @property
    def location(self) -> str:
        return shown(self.url)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- reading -------------------------------------------------------------------------
    def encodings(self, encoder: str | None = None) -> Encodings:
        with self._session(read=True) as cursor:
            if cursor is None:
                return Encodings((), np.zeros((0, ENCODING_SIZE)), 0)
            version = int(cursor.execute(f"SELECT value FROM {SCHEMA_NAME}.settings WHERE key='version'").fetchone()[0])
            rows = cursor.execute(
                f"SELECT p.name, ph.encoding::text, ph.id FROM {SCHEMA_NAME}.photos ph JOIN {SCHEMA_NAME}.people p "
                "ON p.id = ph.person_id WHERE %(encoder)s::text IS NULL OR ph.encoder = %(encoder)s ORDER BY ph.id",
                {"encoder": encoder},
            ).fetchall()
        matrix = np.array([parse_vector(row[1]) for row in rows]).reshape(len(rows), ENCODING_SIZE)
        return Encodings(tuple(row[0] for row in rows), matrix, version, tuple(row[2] for row in rows))

    def index(self, encoder: str) -> PostgresIndex:
        return PostgresIndex(self, check_encoder(encoder), self.version())

    # --- internals -----------------------------------------------------------------------
    def _connection(self):
        """The open connection, else a new one; :class:`GalleryUnavailable` while the database
        cannot be reached (retried at most every RETRY_AFTER_S). Call with the lock held."""
        if self._db is not None and not self._db.closed:
            return self._db
        if time.monotonic() - self._failed_at < RETRY_AFTER_S:
            raise GalleryUnavailable(self._failure)
        psycopg = _driver()
        options = f"-c hnsw.ef_search={EF_SEARCH}" + (" -c default_transaction_read_only=on" if self.readonly else "")
        try:
            self._db = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, options=options)
        except psycopg.Error as error:
            self._unavailable(error)
        return self._db

    def _unavailable(self, error: Exception):
        self.close()
        self._failed_at = time.monotonic()
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self._failure = f"the gallery database {self.location} is unavailable ({reason.replace(self.url, self.location)})"
        raise GalleryUnavailable(self._failure) from error

    @contextmanager
    def _session(self, read: bool) -> Iterator:
        """A cursor inside one transaction (``read``: None when there is no gallery yet). A lost
        connection becomes :class:`GalleryUnavailable`; the next call reconnects."""
        psycopg = _driver()
        with self._lock:
            db = self._connection()
            try:
                with db.transaction(), db.cursor() as cursor:
                    if read and not self._exists(cursor):
                        yield None
                    else:
                        yield cursor
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
                raise GalleryError("another server changed the gallery at the same moment; nothing was saved, try again") from error
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                self._unavailable(error)

    def _exists(self, cursor) -> bool:
        """Whether the schema is there (and ours); :class:`GalleryError` for a stranger's."""
        if self._state == "current":
            return True
        row = cursor.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (SCHEMA_NAME,)
        ).fetchone()
        if row is None:
            self._state = "empty"
            return False
        if row[0] != MARK:
            raise GalleryError(f"the schema {SCHEMA_NAME} of {self.location} is not a Vision Lab gallery; it was left untouched")
        self._state = "current"
        return True

    @contextmanager
    def _writing(self, erases: bool = False) -> Iterator:
        """One write transaction that bumps the version; creates the schema first if needed
        (not for a write that ``erases``: there is nothing to erase then)."""
        if self.readonly:
            raise GalleryError(f"{self.location} was opened read-only")
        try:
            with self._session(read=False) as cursor:
                if not self._exists(cursor):
                    if erases:
                        raise GalleryError(f"{self.location}: there is no gallery there yet")
                    self._create(cursor)
                yield cursor
                cursor.execute(f"UPDATE {SCHEMA_NAME}.settings SET value = (value::bigint + 1)::text WHERE key='version'")
        except BaseException:
            self._state, self._indexed = "unknown", set()  # what this transaction created was rolled back
            raise

    def _create(self, cursor) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (INIT_LOCK,))
        self._state = "unknown"
        if self._exists(cursor):  # another server made it while this one waited
            return
        psycopg = _driver()
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege as error:
            raise GalleryError(
                f"{self.location}: the pgvector extension is not installed in this database and this user may not create it; "
                "as a superuser, run CREATE EXTENSION vector; in it (pgvector >= 0.5)"
            ) from error
        except psycopg.errors.FeatureNotSupported as error:
            raise GalleryError(f"{self.location}: this PostgreSQL has no pgvector (install pgvector >= 0.5)") from error
        for statement in SCHEMA:
            cursor.execute(statement)
        self._prepare_encoders(cursor, set(KNOWN_ENCODERS))
        self._state = "current"  # for the rest of this transaction; reset by _writing if it rolls back

    def _prepare_encoders(self, cursor, encoders: set[str]) -> None:
        """One HNSW index per encoder, made before its first encoding is written."""
        for encoder in sorted(encoders - self._indexed):
            # Looked up first: CREATE INDEX IF NOT EXISTS locks the table even when the index exists,
            # which deadlocks against another server's enrollment.
            if cursor.execute(
                "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s", (SCHEMA_NAME, f"photos_hnsw_{encoder}")
            ).fetchone():
                self._indexed.add(encoder)
                continue
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS photos_hnsw_{encoder} ON {SCHEMA_NAME}.photos "
                f"USING hnsw (encoding vector_l2_ops) WHERE encoder = '{encoder}'"
            )
            self._indexed.add(encoder)

    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._session(read=True) as cursor:
            return [] if cursor is None else cursor.execute(sql, parameters).fetchall()

    _scalar_min = False  # LEAST and GREATEST

    def _q(self, sql: str) -> str:
        return sql.replace("{t}", f"{SCHEMA_NAME}.").replace("?", "%s")

    def _box_value(self, box: Box) -> list[int]:
        return [int(v) for v in box]

    def _encoding_value(self, encoding: np.ndarray) -> str:
        return vector_text(encoding)

    def _box_from(self, value: object) -> Box:
        return Box(*value)

    def _unique_violations(self) -> tuple[type[BaseException], ...]:
        return (_driver().errors.UniqueViolation,)



def nearest_photos_sql(encoder: str, rows: int) -> str:
    """The ``rows`` photos of ``encoder`` nearest to ``%(q)s``, with their person's name, nearest
    first. The encoder is a literal (checked by :func:`check_encoder`), not a parameter, so the
    planner always picks that encoder's partial HNSW index."""
    return (
        f"SELECT p.name, n.distance FROM (SELECT person_id, encoding <-> %(q)s::vector AS distance "
        f"FROM {SCHEMA_NAME}.photos WHERE encoder = '{check_encoder(encoder)}' "
        f"ORDER BY encoding <-> %(q)s::vector LIMIT {int(rows)}) n "
        f"JOIN {SCHEMA_NAME}.people p ON p.id = n.person_id ORDER BY n.distance"
    )


class PostgresIndex:
    """Nearest people by the HNSW index of one encoder, queried in the database: nothing of
    the gallery is held in memory."""

    def __init__(self, gallery: PostgresGallery, encoder: str, version: int) -> None:
        self.gallery = gallery
        self.encoder = encoder
        self.version = version

    def nearest_people(self, encoding: np.ndarray, count: int = 2) -> list[tuple[str, float]]:
        query = vector_text(encoding)
        for rows_wanted in SEARCH_ROWS:
            with self.gallery._session(read=True) as cursor:
                if cursor is None:
                    return []
                if rows_wanted > EF_SEARCH:
                    cursor.execute(f"SET LOCAL hnsw.ef_search = {rows_wanted}")
                rows = cursor.execute(nearest_photos_sql(self.encoder, rows_wanted), {"q": query}).fetchall()
            nearest: dict[str, float] = {}
            for name, distance in rows:
                nearest.setdefault(name, float(distance))
            if len(nearest) >= count or len(rows) < rows_wanted:
                break
        return list(nearest.items())[:count]

    def encodings_of(self, name: str) -> np.ndarray:
        rows = self.gallery._read(
            f"SELECT ph.encoding::text FROM {SCHEMA_NAME}.photos ph JOIN {SCHEMA_NAME}.people p ON p.id = ph.person_id "
            "WHERE p.key = %s AND ph.encoder = %s ORDER BY ph.id",
            (name_key(name), self.encoder),
        )
        return np.array([parse_vector(text) for (text,) in rows]).reshape(len(rows), ENCODING_SIZE)
