"""Values over time (docs/values.md): review before write, staleness after a
definition change, history and revert. ``states`` reads what state a row's AI value
is in, ``review`` accepts or rejects a proposal, ``history`` lists and reverts
earlier values, ``retention`` keeps what ``ai_cleanup`` must not delete."""
