//! End-to-end stories: emulators → engine → emulators. The stories live in `tests/tests/`.
