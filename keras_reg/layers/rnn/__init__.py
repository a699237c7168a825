"""Recurrent cells and sequence layers (one file per cell type)."""
