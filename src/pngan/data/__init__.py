"""Data sets: ``FORMAT:PATH`` specs, readers for every benchmark layout, patch sampling."""
