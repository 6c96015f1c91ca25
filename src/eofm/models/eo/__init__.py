"""Prithvi-EO foundation models through terratorch, on the WGAST 10 m LST task."""
