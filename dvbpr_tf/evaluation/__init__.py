"""How well it works: metrics (exact and sampled AUC, plain NumPy), evaluator (feeds them from
a model), planted (the oracle of simulated data), image_metrics (Table IV), nearest_neighbours
(Fig. 4). May import: core, data, features, the builders' protocol constants."""
