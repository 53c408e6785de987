"""Declaration: what a project states about its AI fields and functions.

``prompts`` (templates and rendering), ``tokens`` (counting), ``outputs`` (choices,
JSON, JSON Schema), ``chains`` (AI fields that depend on other AI fields),
``file_inputs`` (a row's files as inputs, within limits), ``checks`` and
``input_checks`` (system checks; the latter for ``inputs``, ``tools`` and ``api``)
and ``generation`` (the built-in AI function that generates one field).
``fields.py`` and ``functions.py``, the public entry points, stay at the package
top level.
"""
