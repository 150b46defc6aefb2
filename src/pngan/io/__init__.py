"""File I/O: images (PNG/JPEG/TIFF, 8/16 bit), atomic writes."""
