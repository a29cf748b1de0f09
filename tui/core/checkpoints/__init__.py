"""Save points: content-addressed blobs, manifests, the workspace scan and restore, the
checkpointer, the timeline, diffs, gc, and export/import of a whole session."""
