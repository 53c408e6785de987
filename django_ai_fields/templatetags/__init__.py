"""Template tags: ``{% load ai_fields %}``."""
