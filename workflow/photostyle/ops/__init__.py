"""ops: pure tensor/array functions (colour maps, domain transform, matting Laplacian, smoothing, regions, WCT, measures); import core only."""
