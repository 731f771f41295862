import sys

from backbone.cli import main
from services.matching.app import SPEC

sys.exit(main(SPEC))
