"""What leaves a run for use elsewhere: export (SavedModels that plain TensorFlow calls:
trained users, new users folded in from liked items or photos, similar items), fold_in (a new
user's theta by eq. 5 with the tower and the catalog fixed), batch_csv (a chunked CSV that a
killed run never leaves corrupt and a rerun resumes), new_items (new products read from a
folder or CSV, checked, for an export that grows the catalog) and projector
(TensorBoard's embedding projector). May import: core, data, models."""
