"""Write the browser test's bad uploads into a folder: a text file and an image over the
server's pixel limit (18 megapixels of one colour: a small PNG that must not be decoded)."""

import sys
from pathlib import Path

from PIL import Image

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
(out / "notes.txt").write_text("this is a text file, not an image\n" * 20)
Image.new("RGB", (4500, 4000), (40, 120, 200)).save(out / "huge.png", optimize=True)
print(out)
