"""One scan: listing into the catalog, the read plan and session, shards and their merge, progress."""
