"""QR / barcode scanners (one line + CR per code): interface, serial driver, pty simulator."""
