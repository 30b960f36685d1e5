"""nets: networks and their training (VGG, fast network, universal encoder/decoders, segmenters, image optimisation); import ops and core."""
