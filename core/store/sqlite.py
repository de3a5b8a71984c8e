"""The gallery: a SQLite file of people, their photos' face crops and face encodings.

Invariants:
- Every write is one ``BEGIN IMMEDIATE`` transaction: a person and the photos enrolled with them
  appear together or not at all, even when the process is killed mid-write (SQLite's journal).
- Safe for several threads (one connection per :class:`Gallery`, guarded by a lock) and several
  processes or sessions (WAL mode, a busy timeout, SQLite's file locks).
- :meth:`Gallery.version` grows with every committed change, from any connection, so readers
  can cache what they derived from the gallery (the matcher of the live processor).
- Nothing is pickled: encodings are little-endian float64 bytes, thumbnails JPEG bytes.
- Names are validated by :func:`validate_name` before anything is written.
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
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.faces import Box

GALLERY_ENV = "VISION_LAB_GALLERY"
MAX_NAME_LENGTH = 100
ENCODING_DTYPE = np.dtype("<f8")
ENCODING_SIZE = 128
# Characters that could make a name a path, markup or markdown when shown somewhere.
FORBIDDEN_NAME_CHARACTERS = set('/\\<>`*_[]{}()#|~!$^&=:;"')
SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    box TEXT NOT NULL,
    thumbnail BLOB NOT NULL,
    encoding BLOB NOT NULL,
    encoder TEXT NOT NULL DEFAULT 'dlib',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS photos_by_person ON photos(person_id);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO settings(key, value) VALUES ('version', '0');
"""


class GalleryError(ValueError):
    """A request the gallery refuses (bad name, unknown person...); nothing was written."""


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    photos: int


@dataclass(frozen=True)
class Photo:
    id: int
    person: str
    source: str
    box: Box
    thumbnail_jpeg: bytes
    encoder: str


@dataclass(frozen=True)
class NewPhoto:
    """A photo ready to be stored: where it came from, the chosen face, its encoding and the
    encoder that made it."""

    source: str
    box: Box
    thumbnail_jpeg: bytes
    encoding: np.ndarray
    encoder: str


@dataclass(frozen=True)
class Encodings:
    """Every stored encoding: row ``i`` of ``matrix`` belongs to ``names[i]``."""

    names: tuple[str, ...]
    matrix: np.ndarray  # (n, 128) float64
    version: int


def default_gallery_path() -> Path:
    """``$VISION_LAB_GALLERY``, else ``$XDG_DATA_HOME/vision-lab/gallery.sqlite3``
    (``~/.local/share`` when XDG_DATA_HOME is unset)."""
    if os.environ.get(GALLERY_ENV, "").strip():
        return Path(os.environ[GALLERY_ENV]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(data_home) / "vision-lab" / "gallery.sqlite3"


def validate_name(name: object) -> str:
    """The name, stripped; raises :class:`GalleryError` saying why it cannot name a person."""
    if not isinstance(name, str):
        raise GalleryError("a name must be text")
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise GalleryError("the name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise GalleryError(f"the name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise GalleryError("the name contains control or invisible characters")
    bad = sorted(set(name) & FORBIDDEN_NAME_CHARACTERS)
    if bad:
        raise GalleryError(f"the name may not contain {' '.join(bad)} (letters, digits, spaces, - ' . , are fine)")
    if ".." in name:
        raise GalleryError("the name may not contain '..'")
    return name


class Gallery:
    """One gallery file; share an instance between threads freely."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_gallery_path()
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a folder; the gallery must be a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA secure_delete=ON")  # deleted photos and encodings are overwritten
            self._db.executescript(SCHEMA)  # idempotent statements: safe when several processes open the file
            self._upgrade()
        except sqlite3.DatabaseError as error:
            raise GalleryError(f"{self.path} is not a usable gallery file ({error})") from error

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -------------------------------------------------------------------------
    def version(self) -> int:
        """A number that grows with every committed change (cheap: one indexed read)."""
        with self._lock:
            return int(self._db.execute("SELECT value FROM settings WHERE key='version'").fetchone()[0])

    def people(self) -> list[Person]:
        """Everyone, sorted by name, with their number of photos."""
        return self._people("", ())

    def person(self, name: str) -> Person | None:
        """``name`` (compared ignoring ASCII case), or None."""
        found = self._people("WHERE p.name = ?", (name.strip(),))
        return found[0] if found else None

    def photos(self, name: str) -> list[Photo]:
        """The photos of ``name`` in the order they were added; raises if there is no such person."""
        person = self._require(name)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, source, box, thumbnail, encoder FROM photos WHERE person_id=? ORDER BY id", (person.id,)
            ).fetchall()
        return [Photo(row[0], person.name, row[1], Box(*json.loads(row[2])), bytes(row[3]), row[4]) for row in rows]

    def encodings(self, encoder: str | None = None) -> Encodings:
        """The encodings made by ``encoder`` (every one when None) with their person's name, and
        the version they were read at."""
        with self._lock, self._transaction(immediate=False):
            version = int(self._db.execute("SELECT value FROM settings WHERE key='version'").fetchone()[0])
            rows = self._db.execute(
                "SELECT p.name, ph.encoding FROM photos ph JOIN people p ON p.id = ph.person_id "
                "WHERE ?1 IS NULL OR ph.encoder = ?1 ORDER BY ph.id",
                (encoder,),
            ).fetchall()
        matrix = np.zeros((len(rows), ENCODING_SIZE))
        for i, (_, blob) in enumerate(rows):
            matrix[i] = np.frombuffer(blob, dtype=ENCODING_DTYPE)
        return Encodings(tuple(name for name, _ in rows), matrix, version)

    def encoder_counts(self) -> dict[str, int]:
        """How many photos each encoder's encodings cover."""
        with self._lock:
            return dict(self._db.execute("SELECT encoder, COUNT(*) FROM photos GROUP BY encoder").fetchall())

    def setting(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    # --- writing (each method is one transaction) -----------------------------------------
    def add_person(self, name: str) -> Person:
        """Create ``name`` with no photos; raises if the name is invalid or taken."""
        name = validate_name(name)
        with self._lock, self._transaction():
            if self._find_id(name) is not None:
                raise GalleryError(f"{name!r} is already in the gallery")
            self._db.execute("INSERT INTO people(name, created) VALUES (?, ?)", (name, time.time()))
            self._bump()
        return self._require(name)

    def add_photos(self, name: str, photos: Sequence[NewPhoto], create: bool = True) -> list[int]:
        """Store ``photos`` for ``name`` (created if absent and ``create``) atomically; their ids."""
        name = validate_name(name)
        _check_encodings([photo.encoding for photo in photos], [photo.source for photo in photos])
        with self._lock, self._transaction():
            person_id = self._find_id(name)
            if person_id is None:
                if not create:
                    raise GalleryError(f"nobody called {name!r} in the gallery")
                person_id = self._db.execute("INSERT INTO people(name, created) VALUES (?, ?)", (name, time.time())).lastrowid
            ids = []
            for photo in photos:
                cursor = self._db.execute(
                    "INSERT INTO photos(person_id, source, box, thumbnail, encoding, encoder, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        person_id,
                        photo.source[:255],
                        json.dumps([int(v) for v in photo.box]),
                        photo.thumbnail_jpeg,
                        np.asarray(photo.encoding, dtype=ENCODING_DTYPE).tobytes(),
                        photo.encoder,
                        time.time(),
                    ),
                )
                ids.append(cursor.lastrowid)
            self._bump()
        return ids

    def rename(self, old: str, new: str) -> Person:
        new = validate_name(new)
        with self._lock, self._transaction():
            person_id = self._find_id(old)
            if person_id is None:
                raise GalleryError(f"nobody called {old!r} in the gallery")
            other = self._find_id(new)
            if other is not None and other != person_id:
                raise GalleryError(f"{new!r} is already in the gallery")
            self._db.execute("UPDATE people SET name=? WHERE id=?", (new, person_id))
            self._bump()
        return self._require(new)

    def forget(self, name: str) -> int:
        """Delete ``name`` with every photo and encoding; the number of photos deleted."""
        with self._lock, self._transaction():
            person_id = self._find_id(name)
            if person_id is None:
                raise GalleryError(f"nobody called {name!r} in the gallery")
            deleted = self._db.execute("DELETE FROM photos WHERE person_id=?", (person_id,)).rowcount
            self._db.execute("DELETE FROM people WHERE id=?", (person_id,))
            self._bump()
        return deleted

    def delete_photo(self, photo_id: int) -> None:
        with self._lock, self._transaction():
            if self._db.execute("DELETE FROM photos WHERE id=?", (photo_id,)).rowcount == 0:
                raise GalleryError(f"no photo {photo_id} in the gallery")
            self._bump()

    def replace_encodings(self, encodings: dict[int, np.ndarray], encoder: str) -> None:
        """Give the photos ``encodings`` (photo id -> new encoding) made by ``encoder``, in one transaction."""
        _check_encodings(list(encodings.values()), [f"photo {photo_id}" for photo_id in encodings])
        with self._lock, self._transaction():
            for photo_id, encoding in encodings.items():
                updated = self._db.execute(
                    "UPDATE photos SET encoding=?, encoder=? WHERE id=?",
                    (np.asarray(encoding, dtype=ENCODING_DTYPE).tobytes(), encoder, photo_id),
                ).rowcount
                if updated == 0:
                    raise GalleryError(f"no photo {photo_id} in the gallery")
            self._bump()

    def set_setting(self, key: str, value: str) -> None:
        if key == "version":
            raise GalleryError("'version' is maintained by the gallery itself")
        with self._lock, self._transaction():
            self._db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value))
            self._bump()

    # --- internals -----------------------------------------------------------------------
    def _upgrade(self) -> None:
        """Add ``photos.encoder`` to a file written before it existed (its encodings are dlib's)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(photos)")}
        if "encoder" not in columns:
            with self._transaction():
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(photos)")}  # another process?
                if "encoder" not in columns:
                    self._db.execute("ALTER TABLE photos ADD COLUMN encoder TEXT NOT NULL DEFAULT 'dlib'")

    def _transaction(self, immediate: bool = True):
        return _Transaction(self._db, immediate)

    def _people(self, where: str, parameters: tuple) -> list[Person]:
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id, p.name, COUNT(ph.id) FROM people p LEFT JOIN photos ph ON ph.person_id = p.id "
                f"{where} GROUP BY p.id ORDER BY p.name COLLATE NOCASE",
                parameters,
            ).fetchall()
        return [Person(*row) for row in rows]

    def _bump(self) -> None:
        self._db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key='version'")

    def _find_id(self, name: str) -> int | None:
        row = self._db.execute("SELECT id FROM people WHERE name=?", (name.strip(),)).fetchone()
        return None if row is None else row[0]

    def _require(self, name: str) -> Person:
        person = self.person(name)
        if person is None:
            raise GalleryError(f"nobody called {name!r} in the gallery")
        return person


def _check_encodings(encodings: Sequence[np.ndarray], sources: Sequence[str]) -> None:
    for encoding, source in zip(encodings, sources):
        if np.shape(encoding) != (ENCODING_SIZE,) or not np.all(np.isfinite(encoding)):
            raise GalleryError(f"{source}: not a {ENCODING_SIZE}-value face encoding")


class _Transaction:
    """``BEGIN IMMEDIATE`` (writer) or ``BEGIN`` (consistent read) ... ``COMMIT``, ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection, immediate: bool) -> None:
        self._db = db
        self._immediate = immediate

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE" if self._immediate else "BEGIN")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
