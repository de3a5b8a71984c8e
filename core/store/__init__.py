"""Where enrolled people live: the gallery of people, face crops and encodings (SQLite).

Imports only the shared modules at the root of ``core``.
"""
