import sys

from backbone.cli import main
from services.registry.account_command import ACCOUNT
from services.registry.app import SPEC, create_app
from services.registry.token_command import TOKEN

sys.exit(main(SPEC, app=create_app, commands=[TOKEN, ACCOUNT]))
