"""Acting on findings: plans, review, execution with a journal, and undo."""
