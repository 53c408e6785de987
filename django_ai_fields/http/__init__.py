"""The JSON API: ``views`` (the endpoints) and ``jsonapi`` (their plumbing:
method, auth, CSRF, permission, JSON errors, pagination). Routed by ``urls.py``."""
