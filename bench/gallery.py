"""Gallery benchmark: SQLite (a scan in the app's memory) against PostgreSQL + pgvector (HNSW in
the database), on synthetic encodings; prints one JSON object.

    .venv/bin/python bench/gallery.py [--sizes 10000,100000,1000000] [--url postgresql://...] [--pgdata DIR] [--ef-search 40,100,200]

Data: 128-d unit vectors shaped like SFace's: one random centre per person, 5 photos per person
(the centre plus Gaussian noise, renormalised; two photos of one person lie ~0.6 apart, two people
~1.4, as SFace's same/different distances of ``bench/recognition.py``). Queries: a new photo of a
random enrolled person (a returning face), and random unit vectors (strangers).

For each size:
- enrollment throughput through the app's own path (``Gallery.add_photos``, one transaction per
  person of 5 photos) on a sample of people; the rest is bulk-loaded (SQLite ``executemany``,
  PostgreSQL ``COPY``) and the HNSW index built after the load (its build time is reported);
- match latency p50/p95 of the app's call (``Matcher.match``: nearest two people, threshold,
  margin), measured in a separate process that plays the app: it opens the gallery as the live
  processor does and reports its peak resident memory (VmHWM);
- recall@1 of the HNSW search: the share of returning faces whose nearest person is the exact
  search's (``recall_at_1``); the same for strangers apart (``recall_at_1_strangers``: their
  nearest person is some random one, ~1.4 away, and never named).

Target (issue 18): 1M encodings, p95 match <= 20 ms and recall@1 >= 0.99 on this 2-core machine,
with the app's memory independent of the gallery's size. PostgreSQL comes from the pgserver wheel
(PostgreSQL 16, pgvector 0.6.2) unless --url names another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from core.faces import Box  # noqa: E402
from core.store.gallery import NewPhoto, open_gallery  # noqa: E402

PHOTOS_PER_PERSON = 5
NOISE = 0.0375  # per dimension: two photos of one person ~0.6 apart
ENCODER = "sface"
API_SAMPLE_PEOPLE = 300  # enrolled through Gallery.add_photos (timed); the rest bulk-loaded
QUERIES = 500
SLOW_SCAN = 500_000


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def synthetic(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(person index of each photo, encodings (size, 128) float32, centres)."""
    rng = np.random.default_rng(seed)
    people = size // PHOTOS_PER_PERSON
    centres = unit(rng.normal(size=(people, 128))).astype(np.float32)
    owner = np.repeat(np.arange(people), PHOTOS_PER_PERSON)
    encodings = np.empty((people * PHOTOS_PER_PERSON, 128), np.float32)
    for start in range(0, len(owner), 200_000):  # chunks: 1M x 128 float64 noise at once is 1 GB
        part = owner[start : start + 200_000]
        encodings[start : start + len(part)] = unit(centres[part] + rng.normal(scale=NOISE, size=(len(part), 128)))
    return owner, encodings, centres


def queries(centres: np.ndarray, count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``count`` returning faces (new photos of random people) then ``count // 5`` strangers; and
    the true person of each returning face."""
    rng = np.random.default_rng(seed)
    who = rng.integers(0, len(centres), count)
    returning = unit(centres[who] + rng.normal(scale=NOISE, size=(count, 128)))
    strangers = unit(rng.normal(size=(count // 5, 128)))
    return np.vstack([returning, strangers]).astype(np.float32), who


def person_name(i: int) -> str:
    return f"Person {i:07d}"


def enroll_sample(gallery, owner: np.ndarray, encodings: np.ndarray) -> tuple[int, float]:
    """Enroll the first API_SAMPLE_PEOPLE people through the app's path; (photos, photos/s)."""
    people = min(API_SAMPLE_PEOPLE, owner.max() + 1)
    start = time.perf_counter()
    for i in range(people):
        rows = encodings[i * PHOTOS_PER_PERSON : (i + 1) * PHOTOS_PER_PERSON]
        gallery.add_photos(person_name(i), [NewPhoto(f"{i}-{k}.jpg", Box(0, 9, 9, 0), b"jpeg", row.astype(np.float64), ENCODER)
                                            for k, row in enumerate(rows)])  # fmt: skip
    seconds = time.perf_counter() - start
    return people * PHOTOS_PER_PERSON, people * PHOTOS_PER_PERSON / seconds


def bulk_sqlite(path: Path, owner: np.ndarray, encodings: np.ndarray, first_person: int) -> None:
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    now = time.time()
    people = range(first_person, owner.max() + 1)
    db.executemany("INSERT INTO people(id, name, key, created) VALUES (?, ?, ?, ?)",
                   ((i + 1, person_name(i), person_name(i).casefold(), now) for i in people))  # fmt: skip
    start = first_person * PHOTOS_PER_PERSON
    db.executemany(
        "INSERT INTO photos(person_id, source, box, thumbnail, encoding, encoder, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((int(owner[j]) + 1, f"{j}.jpg", "[0, 9, 9, 0]", b"jpeg", encodings[j].astype("<f8").tobytes(), ENCODER, now)
         for j in range(start, len(owner))),  # fmt: skip
    )
    db.execute("UPDATE settings SET value = CAST(value AS INTEGER) + 1 WHERE key='version'")
    db.execute("COMMIT")
    db.close()


def bulk_postgres(url: str, owner: np.ndarray, encodings: np.ndarray, first_person: int) -> float:
    """COPY the rest in, with the HNSW index dropped, then rebuild it; the build's seconds."""
    import psycopg

    from core.store.postgres import SCHEMA_NAME, vector_text

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"DROP INDEX {SCHEMA_NAME}.photos_hnsw_{ENCODER}")
        offset = db.execute(f"SELECT max(id) FROM {SCHEMA_NAME}.people").fetchone()[0] - first_person + 1
        now = time.time()
        with db.cursor().copy(f"COPY {SCHEMA_NAME}.people (id, name, key, created) FROM STDIN") as copy:
            for i in range(first_person, owner.max() + 1):
                copy.write_row((i + offset, person_name(i), person_name(i).casefold(), now))
        with db.cursor().copy(f"COPY {SCHEMA_NAME}.photos (person_id, source, box, thumbnail, encoding, encoder, created) FROM STDIN") as copy:
            for j in range(first_person * PHOTOS_PER_PERSON, len(owner)):
                copy.write_row((int(owner[j]) + offset, f"{j}.jpg", "{0,9,9,0}", b"jpeg", vector_text(encodings[j]), ENCODER, now))
        db.execute(f"SELECT setval(pg_get_serial_sequence('{SCHEMA_NAME}.people', 'id'), (SELECT max(id) FROM {SCHEMA_NAME}.people))")
        db.execute("SET maintenance_work_mem = '3GB'")
        db.execute("SET max_parallel_maintenance_workers = 1")  # two processes on two cores
        start = time.perf_counter()
        db.execute(f"CREATE INDEX photos_hnsw_{ENCODER} ON {SCHEMA_NAME}.photos USING hnsw (encoding vector_l2_ops) WHERE encoder = '{ENCODER}'")
        build = time.perf_counter() - start
        db.execute(f"UPDATE {SCHEMA_NAME}.settings SET value = (value::bigint + 1)::text WHERE key='version'")
        db.execute(f"VACUUM ANALYZE {SCHEMA_NAME}.photos")
    return build


APP = r"""
import json, re, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from core.analysis.recognition import ENCODERS, Matcher
from core.store.gallery import open_gallery
queries = np.load(sys.argv[3])
start = time.perf_counter()
gallery = open_gallery(sys.argv[2], readonly=True)
matcher = Matcher(gallery.index("sface"), ENCODERS["sface"].tolerance)  # as the live processor does
ready = time.perf_counter() - start
latencies, named = [], []
for q in queries:
    t = time.perf_counter()
    named.append(matcher.match(q.astype(np.float64)).name)
    latencies.append((time.perf_counter() - t) * 1000)
nearest = [matcher.index.nearest_people(q.astype(np.float64), 1)[0][0] for q in queries]
print(json.dumps({"ready_s": ready, "latencies_ms": latencies, "named": named, "nearest": nearest,
                  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
                  "rss_mb": int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024}))
"""


def run_app(location: str, query_file: Path, ef_search: int | None = None) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if ef_search is not None:
        env["VISION_LAB_HNSW_EF_SEARCH"] = str(ef_search)
    done = subprocess.run([sys.executable, "-c", APP, str(Path(__file__).resolve().parent.parent), location, str(query_file)],
                          capture_output=True, text=True, check=True, env=env)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def exact_nearest(encodings: np.ndarray, owner: np.ndarray, query_rows: np.ndarray) -> list[str]:
    nearest = []
    for q in query_rows:
        nearest.append(person_name(int(owner[np.argmin(((encodings - q) ** 2).sum(axis=1))])))
    return nearest


def loaded(location: str, size: int) -> bool:
    """Whether ``location`` already holds this benchmark's ``size`` encodings (a kept --pgdata)."""
    with open_gallery(location, readonly=True) as gallery:
        return gallery.version() > 0 and sum(gallery.encoder_counts().values()) == size // PHOTOS_PER_PERSON * PHOTOS_PER_PERSON


def measure(store: str, location: str, size: int, folder: Path, ef_searches: list[int]) -> list[dict]:
    owner, encodings, centres = synthetic(size)
    returning = QUERIES if store != "sqlite" or size < SLOW_SCAN else QUERIES // 5  # a 1M scan takes ~0.3 s a query
    query_rows, who = queries(centres, returning)
    query_file = folder / f"queries-{size}.npy"
    np.save(query_file, query_rows)
    load = {}
    if not loaded(location, size):
        with open_gallery(location) as gallery:
            photos, rate = enroll_sample(gallery, owner, encodings)
        first = photos // PHOTOS_PER_PERSON
        start = time.perf_counter()
        if store == "sqlite":
            bulk_sqlite(Path(location), owner, encodings, first)
        else:
            load["hnsw_build_s"] = round(bulk_postgres(location, owner, encodings, first), 1)
        load.update(enroll_photos_per_s=round(rate, 1), bulk_load_s=round(time.perf_counter() - start, 1))
    exact = exact_nearest(encodings, owner, query_rows)
    rows = []
    for ef_search in ef_searches if store == "postgresql" else [None]:
        app = run_app(location, query_file, ef_search)
        latencies = np.array(app["latencies_ms"])
        rows.append({
            "store": store,
            **({"hnsw_ef_search": ef_search} if ef_search else {}),
            "queries": len(query_rows),
            "encodings": int(len(owner)),
            "people": int(owner.max() + 1),
            **load,
            "match_p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "match_p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "recall_at_1": round(float(np.mean([a == b for a, b in zip(app["nearest"][:returning], exact[:returning])])), 4),
            "recall_at_1_strangers": round(float(np.mean([a == b for a, b in zip(app["nearest"][returning:], exact[returning:])])), 4),
            "returning_named_right": round(float(np.mean([app["named"][i] == person_name(int(who[i])) for i in range(returning)])), 4),
            "strangers_unknown": round(float(np.mean([name is None for name in app["named"][returning:]])), 4),
            "app_ready_s": round(app["ready_s"], 2),
            "app_rss_mb": round(app["rss_mb"], 0),
        })  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--url", help="an empty PostgreSQL database with pgvector (default: a private pgserver)")
    parser.add_argument("--pgdata", help="keep the private pgserver's data here and reuse what it holds (default: a temporary folder)")
    parser.add_argument("--ef-search", default="", help="HNSW ef_search values to sweep, e.g. 40,100,200 (default: the app's)")
    args = parser.parse_args()
    ef_searches = [int(v) for v in args.ef_search.split(",") if v] or [None]
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = args.stores.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vision-lab-bench-gallery-") as tmp:
        folder = Path(tmp)
        server = None
        if "postgresql" in stores and not args.url:
            import pgserver

            server = pgserver.get_server(Path(args.pgdata) if args.pgdata else folder / "pgdata",
                                         cleanup_mode="stop" if args.pgdata else "delete")  # fmt: skip
        for size in sizes:
            for store in stores:
                if store == "sqlite":
                    location = str(folder / f"gallery-{size}.sqlite3")
                elif args.url:
                    location = args.url
                else:
                    import psycopg

                    with psycopg.connect(server.get_uri(), autocommit=True) as db:
                        if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (f"gallery_{size}",)).fetchone() is None:
                            db.execute(f"CREATE DATABASE gallery_{size}")
                    location = server.get_uri(f"gallery_{size}")
                rows += measure(store, location, size, folder, ef_searches)
        if server is not None:
            server.cleanup()
    print(json.dumps({"benchmark": "gallery", "encoder_shape": "SFace-like unit vectors, 5 photos per person",
                      "queries": {"returning": QUERIES, "strangers": QUERIES // 5}, "results": rows}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
