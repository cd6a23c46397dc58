"""Use-cases: the blocking steps of each citizen action, free of threads and UI (the core runs them on workers)."""
