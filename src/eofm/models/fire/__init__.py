"""Wildfire danger models."""
