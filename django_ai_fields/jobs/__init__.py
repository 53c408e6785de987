"""Jobs: running AIJobs on RQ workers.

``lifecycle`` owns every state change of a run (lease ... finish, requeue, recovery
of a lost run); ``engine`` is one run's pipeline; ``chunks`` runs many concurrently;
``drains`` runs the live jobs (a work horse leasing waiting jobs until none is left);
``batches`` sends backfills through the providers' batch APIs; ``estimates`` prices
a bulk regeneration before it is enqueued; ``sweep`` and ``recovery`` put back what
was lost; ``schedules`` keeps the periodic jobs alive; ``actions`` are retry and
cancel, ``retry_limits`` their cooldown and hourly cap; ``steps`` the step log;
``tasks`` holds every RQ entry point. The top of the package below the surfaces.
"""
