"""Land-surface-temperature models (WGAST: MODIS, Landsat and Sentinel-2 fusion to 10 m)."""
