"""The benchmark's Flask app on Werkzeug's threaded development server.

    python benches/wsgi/serve_werkzeug.py PORT
"""

import os
import sys

from werkzeug.serving import run_simple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from app import app  # noqa: E402

run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
