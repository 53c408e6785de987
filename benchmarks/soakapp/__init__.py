"""The kill soak's own app (benchmarks/soak.py): one model, one AI field whose
prompt reads the notes a soak updates."""
