"""A private PostgreSQL 16 with pgvector for trying the shared gallery (``make postgres``).

    .venv/bin/python scripts/postgres.py [start|stop] [--folder .postgres]

``start`` starts the server in the folder (created once, kept between runs), creates the database
``vision_lab`` and prints its URL; the server keeps running after this script ends. Give the URL to
every app server: ``VISION_LAB_GALLERY=<URL> make run`` (or ``--gallery <URL>`` on the command line).
``stop`` stops it; the folder keeps the gallery for the next start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATABASE = "vision_lab"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=("start", "stop"), default="start")
    parser.add_argument("--folder", default=str(Path(__file__).resolve().parent.parent / ".postgres"))
    args = parser.parse_args()
    try:
        import pgserver
        import psycopg
    except ImportError:
        print("pgserver is not installed: run scripts/install.sh --postgres", file=sys.stderr)
        return 2
    folder = Path(args.folder).resolve()
    if args.action == "stop":
        from pgserver._commands import pg_ctl

        if not (folder / "postmaster.pid").exists():
            print(f"no PostgreSQL is running in {folder}", file=sys.stderr)
            return 1
        server = pgserver.get_server(folder, cleanup_mode=None)
        pg_ctl(["-w", "stop"], pgdata=folder, user=server.system_user)
        print(f"stopped the PostgreSQL of {folder}")
        return 0
    server = pgserver.get_server(folder, cleanup_mode=None)  # None: it keeps running after this script
    with psycopg.connect(server.get_uri(), autocommit=True) as db:
        if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            db.execute(f"CREATE DATABASE {DATABASE}")
    print(server.get_uri(DATABASE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
