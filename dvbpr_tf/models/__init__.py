"""The networks and their objectives: cnn_f (the tower), dvbpr (tower + theta_u), gan (the
conditional generator and discriminator), losses (BPR eq. 5, LSGAN eq. 7). Plain Keras.
May import: core, config."""
