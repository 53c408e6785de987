"""Calling: everything between a prepared request and a usable answer.

``pipeline`` (Prepared, the provider call with its quota reservation and usage row,
``drive``), ``routing`` (primary route and fallbacks), ``breaker`` (circuit breaker in
Redis), ``ratelimit`` (RPM/TPM buckets in Redis), ``moderation``, ``streaming``
(partial answers saved as they grow), ``result_cache`` and ``answer`` (moderation,
the routed call, parsing, at most one repair call). Below jobs/, above intake/.
"""
