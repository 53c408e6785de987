"""Management commands: ``ai_regenerate``, ``ai_requeue``, ``ai_cleanup``,
``ai_status``, ``ai_usage``, ``ai_rotate_keys``."""
