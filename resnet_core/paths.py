"""Where the project's shipped files are: beside the library, in a checkout and in an installed wheel alike."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout, or site-packages after `pip install .`
ASSETS = ROOT / "assets"  # sample images, digits.npz, ImageNet class names (see assets/PROVENANCE.md)
APP_ENTRY = ROOT / "app" / "streamlit_app.py"
