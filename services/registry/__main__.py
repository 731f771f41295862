import sys

from backbone.cli import main
from services.registry.app import SPEC

sys.exit(main(SPEC))
