"""Entry point: `flask run` and gunicorn find `app` here."""
from qlar_console import create_app

app = create_app()
