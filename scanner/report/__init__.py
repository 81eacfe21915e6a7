"""What a scan tells: the report (text, JSON, HTML with charts), the audit inventory, and publishing outputs to a
results location."""
