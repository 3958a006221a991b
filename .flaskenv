FLASK_APP=app.py
QLAR_ENV=development
