"""A small Flask route: what the WSGI benchmark (benches/wsgi/run.sh) serves."""

from flask import Flask
app = Flask(__name__)

@app.route("/hello")
def hello():
    return {"hello": "world", "n": 1}
