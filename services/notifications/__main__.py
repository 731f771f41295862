import sys

from backbone.cli import main
from services.notifications.app import SPEC

sys.exit(main(SPEC))
