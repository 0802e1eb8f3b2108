"""What leaves a run for use elsewhere: export (SavedModels that plain TensorFlow calls) and
projector (TensorBoard's embedding projector). May import: core, data, models."""
