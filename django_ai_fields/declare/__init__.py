"""Declaration: what a project states about its AI fields and functions.

``prompts`` (templates and rendering), ``tokens`` (counting), ``outputs`` (choices,
JSON, JSON Schema), ``checks`` (system checks) and ``generation`` (the built-in
AI function that generates one field). ``fields.py`` and ``functions.py``, the
public entry points, stay at the package top level.
"""
