"""Where enrolled people and visitors live: the gallery of people, face crops and encodings, behind
one interface (``gallery.py``) with two stores: a SQLite file (``sqlite.py``, the default) and
PostgreSQL with pgvector (``postgres.py``, shared by many servers).

Imports only the shared modules at the root of ``core``.
"""
