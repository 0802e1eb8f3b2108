"""Personalised design: retrieval (eq. 8), preference maximisation (eqs. 9-11), inversion and
tailoring (eq. 12) over a trained DVBPR and GAN (designer). May import: core, config, data,
models."""
