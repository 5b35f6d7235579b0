"""The whole stack: health as a whole, and the rollback that restores it."""
