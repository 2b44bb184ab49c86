"""Download a URL with urllib and print its size and SHA-256.

    python3 examples/urllib_client.py http://127.0.0.1:8000/file
    tunstack run examples/urllib_client.py http://host:8000/file    # 'host': the TUN's host side
"""
import hashlib
import sys
import time
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else "http://host:8000/"
digest, size, start = hashlib.sha256(), 0, time.monotonic()
with urllib.request.urlopen(url, timeout=30) as response:
    while chunk := response.read(1 << 16):
        digest.update(chunk)
        size += len(chunk)
seconds = time.monotonic() - start
print(f"{size} bytes sha256 {digest.hexdigest()} in {seconds:.3f} s")
