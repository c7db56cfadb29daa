"""`python -m resnet_core`: see resnet_core/cli/main.py."""

import sys

from resnet_core.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
