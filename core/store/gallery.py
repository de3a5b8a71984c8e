"""The gallery interface, its records and the rules both stores share (names, encodings).

Two stores implement :class:`Gallery`: :class:`core.store.sqlite.SqliteGallery`, a file, the
embedded default; and :class:`core.store.postgres.PostgresGallery`, a PostgreSQL database with
pgvector, that several servers share. :func:`open_gallery` picks one from a location: a
``postgresql://`` URL, else a file path.

Invariants (both stores; the tests run against both):
- Every write is one transaction: a person and the photos enrolled with them appear together or
  not at all. Two writers enrolling the same new name at once give one person.
- :meth:`Gallery.version` grows with every committed change, from any connection or server, so
  readers can cache what they derived from it (the live processor's matcher).
- Names are validated by :func:`validate_name` before anything is written and compared by
  :func:`name_key` (NFC, then casefold).
- Encodings of different encoders are never compared: each is stored with its encoder's name.
- Nothing is pickled.
"""

from __future__ import annotations

import os
import re
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from core.faces import Box

GALLERY_ENV = "VISION_LAB_GALLERY"
URL_SCHEMES = ("postgresql", "postgres")
MAX_NAME_LENGTH = 100
ENCODING_SIZE = 128
# Characters that could make a name a path, markup or markdown when shown somewhere.
FORBIDDEN_NAME_CHARACTERS = set('/\\<>`*_[]{}()#|~!$^&=:;"')
ENCODER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


class GalleryError(ValueError):
    """A request the gallery refuses (bad name, unknown person...); nothing was written."""


class GalleryUnavailable(GalleryError):
    """The gallery's database cannot be reached now; the store reconnects by itself later."""


PERSON, VISITOR = "person", "visitor"  # the kinds of people: enrolled by hand, or grouped from unknown faces
VISITOR_LABEL = "Visitor"  # a visitor is called "Visitor N" until somebody names them
MAX_VISITOR_PHOTOS = 5  # a visitor keeps their best views (by quality)


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    photos: int
    kind: str = PERSON
    first_seen: float | None = None  # visitors: when first and last seen (epoch seconds), and visits
    last_seen: float | None = None
    visits: int = 0


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
    quality: float = 0.0  # how good a view it is (visitors keep their best); 0 for enrolled photos


@dataclass(frozen=True)
class Encodings:
    """Every stored encoding: row ``i`` of ``matrix`` belongs to ``names[i]``."""

    names: tuple[str, ...]
    matrix: np.ndarray  # (n, 128) float64
    version: int
    photo_ids: tuple[int, ...] = ()  # the photo of each row (empty for encodings not read from a gallery)


class NeighbourIndex(Protocol):
    """Nearest *people* (not photos) to an encoding, for one encoder, at one gallery version."""

    version: int

    def nearest_people(self, encoding: np.ndarray, count: int = 2) -> list[tuple[str, float]]:
        """Up to ``count`` distinct people, nearest first, each with the Euclidean distance of
        their nearest encoding."""

    def encodings_of(self, name: str) -> np.ndarray:
        """The (n, 128) encodings of ``name`` (per-person thresholds)."""


class ScanIndex:
    """Exact nearest people by scanning encodings held in memory (the SQLite store's index, and
    benchmarks' in-memory galleries)."""

    def __init__(self, encodings: Encodings) -> None:
        self.version = encodings.version
        self.people = sorted(set(encodings.names))
        index = {name: i for i, name in enumerate(self.people)}
        self._owner = np.array([index[name] for name in encodings.names], dtype=int)
        self._matrix = encodings.matrix

    def nearest_people(self, encoding: np.ndarray, count: int = 2) -> list[tuple[str, float]]:
        if not self.people:
            return []
        distances = np.linalg.norm(self._matrix - encoding, axis=1)
        per_person = np.full(len(self.people), np.inf)
        np.minimum.at(per_person, self._owner, distances)
        order = np.argsort(per_person)[:count]
        return [(self.people[i], float(per_person[i])) for i in order]

    def encodings_of(self, name: str) -> np.ndarray:
        keys = [name_key(person) for person in self.people]
        return self._matrix[self._owner == keys.index(name_key(name))] if name_key(name) in keys else self._matrix[:0]


class Gallery(ABC):
    """People, their photos' face crops and encodings; share an instance between threads."""

    readonly: bool

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the gallery lives, fit to show (a path, or a URL without its password)."""

    # --- reading -------------------------------------------------------------------------
    def version(self) -> int:
        """A number that grows with every committed change (cheap); 0 before anything was written."""
        rows = self._read(self._q("SELECT value FROM {t}settings WHERE key = 'version'"))
        return int(rows[0][0]) if rows else 0

    def people(self, kind: str = PERSON) -> list[Person]:
        """Everyone of ``kind`` (enrolled people, or visitors), sorted by name, with their number of photos."""
        return self._people("WHERE p.kind = ?", (kind,))

    def visitors(self) -> list[Person]:
        return self.people(VISITOR)

    def person(self, name: str) -> Person | None:
        """The person or visitor whose name has ``name``'s :func:`name_key`, or None."""
        found = self._people("WHERE p.key = ?", (name_key(name),))
        return found[0] if found else None

    def photos(self, name: str) -> list[Photo]:
        """The photos of ``name`` in the order they were added; raises if there is no such person."""
        person = self.require(name)
        rows = self._read(self._q("SELECT id, source, box, thumbnail, encoder FROM {t}photos WHERE person_id = ? ORDER BY id"), (person.id,))
        return [Photo(row[0], person.name, row[1], self._box_from(row[2]), bytes(row[3]), row[4]) for row in rows]

    @abstractmethod
    def encodings(self, encoder: str | None = None) -> Encodings:
        """The encodings made by ``encoder`` (every one when None) with their person's name, and
        the version they were read at."""

    def index(self, encoder: str) -> NeighbourIndex:
        """Nearest-people search over ``encoder``'s encodings at the current version."""
        return ScanIndex(self.encodings(encoder))

    def encoder_counts(self) -> dict[str, int]:
        """How many photos each encoder's encodings cover."""
        return dict(self._read(self._q("SELECT encoder, COUNT(*) FROM {t}photos GROUP BY encoder")))

    def setting(self, key: str) -> str | None:
        rows = self._read(self._q("SELECT value FROM {t}settings WHERE key = ?"), (key,))
        return rows[0][0] if rows else None

    # --- writing (each method is one transaction) -----------------------------------------
    def add_person(self, name: str) -> Person:
        """Create ``name`` with no photos; raises if the name is invalid or taken."""
        name = validate_name(name)
        with self._writing() as db:
            inserted = db.execute(
                self._q("INSERT INTO {t}people(name, key, created) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING id"),
                (name, name_key(name), time.time()),
            ).fetchone()
            if inserted is None:
                raise GalleryError(f"{name!r} is already in the gallery")
        return self.require(name)

    def add_photos(self, name: str, photos: Sequence[NewPhoto], create: bool = True) -> list[int]:
        """Store ``photos`` for ``name`` (created if absent and ``create``) atomically; their ids."""
        name = validate_name(name)
        check_encodings([photo.encoding for photo in photos], [photo.source for photo in photos])
        with self._writing() as db:
            self._prepare_encoders(db, {check_encoder(photo.encoder) for photo in photos})
            person_id = self._find_id(db, name)
            if person_id is None:
                if not create:
                    raise GalleryError(f"nobody called {name!r} in the gallery")
                # Another server may insert the same key meanwhile: then this waits for it and takes its row.
                person_id = db.execute(
                    self._q("INSERT INTO {t}people(name, key, created) VALUES (?, ?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING id"),
                    (name, name_key(name), time.time()),
                ).fetchone()[0]  # fmt: skip
            ids = self._insert_photos(db, person_id, photos)
        return ids

    def rename(self, old: str, new: str) -> Person:
        """Give ``old`` the name ``new`` (a change of case or accents only is fine); the old
        name is erased."""
        new = validate_name(new)
        try:
            with self._writing(erases=True) as db:
                person_id = self._find_id(db, old)
                if person_id is None:
                    raise GalleryError(f"nobody called {old!r} in the gallery")
                other = self._find_id(db, new)
                if other is not None and other != person_id:
                    raise GalleryError(f"{new!r} is already in the gallery")
                db.execute(self._q("UPDATE {t}people SET name = ?, key = ? WHERE id = ?"), (new, name_key(new), person_id))
        except self._unique_violations() as error:  # another server took the name meanwhile
            raise GalleryError(f"{new!r} is already in the gallery") from error
        return self.require(new)

    def forget(self, name: str) -> int:
        """Delete ``name`` with every photo and encoding; the number of photos deleted."""
        with self._writing(erases=True) as db:
            person_id = self._find_id(db, name)
            if person_id is None:
                raise GalleryError(f"nobody called {name.strip()!r} in the gallery")
            deleted = db.execute(self._q("DELETE FROM {t}photos WHERE person_id = ?"), (person_id,)).rowcount
            db.execute(self._q("DELETE FROM {t}people WHERE id = ?"), (person_id,))
        return deleted

    def delete_photo(self, photo_id: int) -> None:
        with self._writing(erases=True) as db:
            if db.execute(self._q("DELETE FROM {t}photos WHERE id = ?"), (photo_id,)).rowcount == 0:
                raise GalleryError(f"no photo {photo_id} in the gallery")

    def replace_encodings(self, encodings: dict[int, np.ndarray], encoder: str) -> None:
        """Give the photos ``encodings`` (photo id -> new encoding) made by ``encoder``, in one
        transaction; the old encodings are erased."""
        check_encodings(list(encodings.values()), [f"photo {photo_id}" for photo_id in encodings])
        with self._writing(erases=True) as db:
            self._prepare_encoders(db, {check_encoder(encoder)})
            for photo_id, encoding in encodings.items():
                updated = db.execute(
                    self._q("UPDATE {t}photos SET encoding = ?, encoder = ? WHERE id = ?"), (self._encoding_value(encoding), encoder, photo_id)
                ).rowcount
                if updated == 0:
                    raise GalleryError(f"no photo {photo_id} in the gallery")

    def set_setting(self, key: str, value: str) -> None:
        if key == "version":
            raise GalleryError("'version' is maintained by the gallery itself")
        with self._writing() as db:
            db.execute(self._q("INSERT INTO {t}settings(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                       (key, value))  # fmt: skip

    @abstractmethod
    def close(self) -> None: ...

    # --- visitors: faces nobody named, grouped as they are seen (one SQL for both stores) ------
    def add_visitor(self, photos: Sequence[NewPhoto], seen_at: float) -> Person:
        """A new visitor, "Visitor N" (N never reused), with their best views; one transaction."""
        check_encodings([photo.encoding for photo in photos], [photo.source for photo in photos])
        with self._writing() as db:
            row = db.execute(self._q("SELECT value FROM {t}settings WHERE key = 'visitor.next'")).fetchone()
            number = int(row[0]) if row else 1
            db.execute(self._q("DELETE FROM {t}settings WHERE key = 'visitor.next'"))
            db.execute(self._q("INSERT INTO {t}settings(key, value) VALUES ('visitor.next', ?)"), (str(number + 1),))
            label = f"{VISITOR_LABEL} {number}"
            person_id = db.execute(
                self._q("INSERT INTO {t}people(name, key, created, kind, first_seen, last_seen, visits) VALUES (?, ?, ?, ?, ?, ?, 1) RETURNING id"),
                (label, name_key(label), seen_at, VISITOR, seen_at, seen_at),
            ).fetchone()[0]
            self._insert_photos(db, person_id, photos)
        return self.require(label)

    def record_visit(self, label: str, seen_at: float, new_visit: bool, photos: Sequence[NewPhoto] = ()) -> None:
        """``label`` seen again at ``seen_at`` (a new visit, or the same one going on), with
        views that replace their worst ones when better (at most MAX_VISITOR_PHOTOS are kept)."""
        check_encodings([photo.encoding for photo in photos], [photo.source for photo in photos])
        with self._writing(erases=True) as db:
            person_id = self._visitor_id(db, label)
            db.execute(self._q("UPDATE {t}people SET last_seen = ?, visits = visits + ? WHERE id = ?"), (seen_at, int(new_visit), person_id))
            self._insert_photos(db, person_id, photos)
            kept = db.execute(self._q("SELECT id FROM {t}photos WHERE person_id = ? ORDER BY quality DESC, id"), (person_id,)).fetchall()
            for (photo_id,) in kept[MAX_VISITOR_PHOTOS:]:
                db.execute(self._q("DELETE FROM {t}photos WHERE id = ?"), (photo_id,))

    def name_visitor(self, label: str, name: str) -> Person:
        """The visitor becomes the person ``name`` with their photos: a new person, or more photos
        of an enrolled one of that name."""
        name = validate_name(name)
        with self._writing(erases=True) as db:
            visitor_id = self._visitor_id(db, label)
            row = db.execute(self._q("SELECT id, kind FROM {t}people WHERE key = ?"), (name_key(name),)).fetchone()
            if row is None or row[0] == visitor_id:
                db.execute(self._q("UPDATE {t}people SET name = ?, key = ?, kind = ? WHERE id = ?"), (name, name_key(name), PERSON, visitor_id))
            elif row[1] == VISITOR:
                raise GalleryError(f"{name!r} is another visitor: merge the two instead")
            else:
                db.execute(self._q("UPDATE {t}photos SET person_id = ? WHERE person_id = ?"), (row[0], visitor_id))
                db.execute(self._q("DELETE FROM {t}people WHERE id = ?"), (visitor_id,))
        return self.require(name)

    def merge_visitors(self, keep: str, other: str) -> Person:
        """``other``'s photos and visits go to ``keep``; ``other`` is deleted."""
        with self._writing(erases=True) as db:
            keep_id, other_id = self._visitor_id(db, keep), self._visitor_id(db, other)
            if keep_id == other_id:
                raise GalleryError("a visitor cannot be merged with itself")
            first, last, visits = db.execute(self._q("SELECT first_seen, last_seen, visits FROM {t}people WHERE id = ?"), (other_id,)).fetchone()
            db.execute(
                self._q("UPDATE {t}people SET first_seen = MIN(first_seen, ?), last_seen = MAX(last_seen, ?), visits = visits + ? WHERE id = ?")
                if self._scalar_min else
                self._q("UPDATE {t}people SET first_seen = LEAST(first_seen, ?), last_seen = GREATEST(last_seen, ?), visits = visits + ? WHERE id = ?"),
                (first, last, visits, keep_id),
            )  # fmt: skip
            db.execute(self._q("UPDATE {t}photos SET person_id = ? WHERE person_id = ?"), (keep_id, other_id))
            db.execute(self._q("DELETE FROM {t}people WHERE id = ?"), (other_id,))
            kept = db.execute(self._q("SELECT id FROM {t}photos WHERE person_id = ? ORDER BY quality DESC, id"), (keep_id,)).fetchall()
            for (photo_id,) in kept[MAX_VISITOR_PHOTOS:]:
                db.execute(self._q("DELETE FROM {t}photos WHERE id = ?"), (photo_id,))
        return self.require(keep)

    def forget_visitors(self, older_than_days: float, now: float | None = None) -> int:
        """Forget every visitor last seen more than ``older_than_days`` ago (0: every visitor),
        as completely as :meth:`forget`; how many."""
        cutoff = (time.time() if now is None else now) - older_than_days * 86400
        stale = [v.name for v in self.visitors() if older_than_days <= 0 or (v.last_seen or 0) < cutoff]
        for label in stale:
            self.forget(label)
        return len(stale)

    # --- what each store provides for the SQL above ----------------------------------------
    _scalar_min = True  # SQLite's MIN(a, b); PostgreSQL says LEAST

    @abstractmethod
    def _q(self, sql: str) -> str:
        """``sql`` written with ``{t}`` before table names and ``?`` placeholders, in this store's dialect."""

    @abstractmethod
    def _writing(self, erases: bool = False):
        """A context: one write transaction (its connection or cursor), bumping the version;
        ``erases``: it deletes data, so it never creates the gallery."""

    @abstractmethod
    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        """The rows of one read (none before the gallery exists)."""

    def _people(self, where: str, parameters: tuple) -> list[Person]:
        """People matching ``where`` (in :meth:`_q`'s notation, on ``people p``)."""
        rows = self._read(
            self._q("SELECT p.id, p.name, COUNT(ph.id), p.kind, p.first_seen, p.last_seen, p.visits FROM {t}people p "
                    f"LEFT JOIN {{t}}photos ph ON ph.person_id = p.id {where} GROUP BY p.id ORDER BY p.key, p.name"),
            parameters,
        )  # fmt: skip
        return [Person(*row) for row in rows]

    def _find_id(self, db, name: str) -> int | None:
        row = db.execute(self._q("SELECT id FROM {t}people WHERE key = ?"), (name_key(name),)).fetchone()
        return None if row is None else row[0]

    def _prepare_encoders(self, db, encoders: set[str]) -> None:
        """Before encodings of ``encoders`` are written (PostgreSQL makes their index)."""

    def _unique_violations(self) -> tuple[type[BaseException], ...]:
        """The driver's errors for a unique key taken by a concurrent writer."""
        return ()

    def _insert_photos(self, db, person_id: int, photos: Sequence[NewPhoto]) -> list[int]:
        ids = []
        for photo in photos:
            ids.append(db.execute(
                self._q("INSERT INTO {t}photos(person_id, source, box, thumbnail, encoding, encoder, created, quality) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                (person_id, photo.source[:255], self._box_value(photo.box), photo.thumbnail_jpeg,
                 self._encoding_value(photo.encoding), check_encoder(photo.encoder), time.time(), float(photo.quality)),
            ).fetchone()[0])  # fmt: skip
        return ids

    @abstractmethod
    def _box_value(self, box: Box) -> object: ...

    @abstractmethod
    def _box_from(self, value: object) -> Box: ...

    @abstractmethod
    def _encoding_value(self, encoding: np.ndarray) -> object: ...

    def _visitor_id(self, db, label: str) -> int:
        row = db.execute(self._q("SELECT id FROM {t}people WHERE key = ? AND kind = ?"), (name_key(label), VISITOR)).fetchone()
        if row is None:
            raise GalleryError(f"no visitor called {label.strip()!r} in the gallery")
        return row[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require(self, name: str) -> Person:
        person = self.person(name)
        if person is None:
            raise GalleryError(f"nobody called {name.strip()!r} in the gallery")
        return person


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and urlsplit(location.strip()).scheme.lower() in URL_SCHEMES


def default_gallery_location() -> str:
    """``$VISION_LAB_GALLERY`` (a file or a ``postgresql://`` URL), else
    ``$XDG_DATA_HOME/vision-lab/gallery.sqlite3`` (``~/.local/share`` when XDG_DATA_HOME is unset)."""
    if os.environ.get(GALLERY_ENV, "").strip():
        chosen = os.environ[GALLERY_ENV].strip()
        return chosen if is_url(chosen) else str(Path(chosen).expanduser())
    data_home = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return str(Path(data_home) / "vision-lab" / "gallery.sqlite3")


def open_gallery(location: str | Path | None = None, readonly: bool = False) -> Gallery:
    """The gallery at ``location`` (default: :func:`default_gallery_location`): PostgreSQL for a
    ``postgresql://`` URL, else a SQLite file. Opening creates nothing: the first write does."""
    location = default_gallery_location() if location is None else location
    if is_url(location):
        from core.store.postgres import PostgresGallery

        return PostgresGallery(str(location).strip(), readonly=readonly)
    from core.store.sqlite import SqliteGallery

    return SqliteGallery(location, readonly=readonly)


def shown(location: str | Path) -> str:
    """``location`` fit for a page or a log: a URL loses its password (and any ``password=`` option)."""
    return redact(str(location)) if is_url(location) else str(location)


def redact(url: str) -> str:
    """Any ``scheme://`` URL (a database's, a camera's) fit for a page or a log: it loses the
    password of ``user:password@`` and the value of a ``password=`` (``passwd``, ``pwd``) option;
    the user name, host, port and path stay, so the person still sees which URL it is."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}" if user else f"@{host}"
    query = re.sub(r"(^|&)(password|passwd|pwd)=[^&]*", r"\1\2=***", parts.query, flags=re.IGNORECASE)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def name_key(name: str) -> str:
    """What two names must share to be one person: NFC, stripped, casefolded (any script's case,
    not only ASCII's), NFC again (casefolding can decompose)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).strip().casefold())


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


def check_encodings(encodings: Sequence[np.ndarray], sources: Sequence[str]) -> None:
    """Raises unless every encoding is 128 finite numbers."""
    for encoding, source in zip(encodings, sources):
        if np.shape(encoding) != (ENCODING_SIZE,) or not np.all(np.isfinite(encoding)):
            raise GalleryError(f"{source}: not a {ENCODING_SIZE}-value face encoding")


def check_encoder(encoder: str) -> str:
    """An encoder's name is a short identifier (the PostgreSQL store puts it in an index's name)."""
    if not ENCODER_NAME.fullmatch(encoder):
        raise GalleryError(f"{encoder!r} is not an encoder's name")
    return encoder
