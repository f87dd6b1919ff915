"""The benchmark's Flask app served by swarmcast (WSGI beside Socket.IO, one port).

    python benches/wsgi/serve_swarmcast.py PORT [THREADS]
"""

import os
import sys
import time

import swarmcast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from app import app  # noqa: E402

server = swarmcast.Server(port=int(sys.argv[1]), worker_threads=1)
server.mount_wsgi(app, threads=int(sys.argv[2]) if len(sys.argv) > 2 else 8)
server.start()
while True:
    time.sleep(1)
