"""The one Flask-Limiter of the console: the API counts per token, the login per username and address.

Its storage is QLAR_RATELIMIT_STORAGE_URI (memory by default), so several processes can share counts.
Each user of it names its own key and answer (api/__init__.py, auth/throttle.py).
"""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address)
