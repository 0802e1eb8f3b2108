"""The other methods of Table III, one module each: popularity (RAND, PopRank), bpr_mf (with
the BPR base class), warp, fm, vbpr, visrank; recommenders builds them by name.
May import: core, data, models."""
