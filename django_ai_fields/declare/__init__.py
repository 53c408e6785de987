"""Declaration: what a project states about its AI fields and functions.

``options`` (every AI option, declared once), ``prompts`` (templates and rendering),
``tokens`` (counting), ``outputs`` (choices, JSON, JSON Schema), ``chains`` (AI
fields that depend on other AI fields), ``file_inputs`` (a row's files as inputs,
within limits), ``checks`` and ``input_checks`` (system checks; the latter for
``inputs``, ``tools`` and ``api``). ``fields.py`` and ``functions.py``, the public
entry points, stay at the package top level and build on these modules, which never
import them. Field generation, which runs a field as an AI function, is
``generation.py``, above the intake layer.
"""
