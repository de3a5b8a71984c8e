"""Start Vision Lab's server: ``streamlit run streamlit_app.py`` with the given extra options.

Why not plain ``streamlit run``: the product keeps its page scripts in ``pages/``, and Streamlit
decides once per process, before the entry script runs, that a ``pages/`` folder beside it means
its legacy automatic navigation. In that mode a first request for, say, ``/live`` runs
``pages/live.py`` alone, skipping ``streamlit_app.py`` (its ``st.navigation``, page config and
import-order guard) for the life of the server. Declaring the app ``st.navigation``-only up
front removes that race.
"""

import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

if __name__ == "__main__":  # a worker process (the style transfers) imports this module again: no second server
    PagesManager.uses_pages_directory = False
    app = Path(__file__).resolve().parent.parent / "streamlit_app.py"
    sys.argv = ["streamlit", "run", str(app), *sys.argv[1:]]
    sys.exit(cli.main())
