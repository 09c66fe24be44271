"""What every package shares and none owns: user-visible text. Nothing here imports the
project's other packages, so `pacs_bridge`, `imaging` and `demo` can all depend on it."""
